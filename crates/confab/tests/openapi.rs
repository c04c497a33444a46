//! `openapi/confab.yaml` and the routers agree: every served route is documented (with the
//! tag of its listener) and every documented operation is served.

use std::collections::BTreeSet;

use yaml_rust2::{Yaml, YamlLoader};

fn spec() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/confab.yaml");
    let text = std::fs::read_to_string(path).expect("openapi/confab.yaml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .pop()
        .expect("one document")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (METHOD, path, tag) of every documented operation.
fn documented() -> BTreeSet<(String, String, String)> {
    let doc = spec();
    let paths = doc["paths"].as_hash().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        for (k, op) in item.as_hash().unwrap() {
            let k = k.as_str().unwrap();
            if !METHODS.contains(&k) {
                continue;
            }
            let tags = op["tags"].as_vec().expect("every operation has tags");
            assert_eq!(tags.len(), 1, "{k} {path}: one tag (its listener)");
            assert!(
                op["operationId"].as_str().is_some(),
                "{k} {path}: operationId"
            );
            out.insert((
                k.to_ascii_uppercase(),
                path.to_string(),
                tags[0].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn served() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (tag, routes) in [
        ("admin", confab::http::admin::routes()),
        ("user", confab::http::user::routes()),
    ] {
        for r in routes {
            out.insert((r.method.to_string(), r.path.to_string(), tag.to_string()));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_operation_is_served() {
    let doc = documented();
    let srv = served();
    let missing_in_doc: Vec<_> = srv.difference(&doc).collect();
    let missing_in_router: Vec<_> = doc.difference(&srv).collect();
    assert!(
        missing_in_doc.is_empty() && missing_in_router.is_empty(),
        "served but not in openapi/confab.yaml: {missing_in_doc:?}\n\
         in openapi/confab.yaml but not served: {missing_in_router:?}"
    );
    assert!(srv.len() >= 12, "{srv:?}");
}

#[test]
fn every_error_response_uses_the_error_schema() {
    let doc = spec();
    for (name, resp) in doc["components"]["responses"].as_hash().unwrap() {
        let schema = &resp["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(
            schema.as_str(),
            Some("#/components/schemas/Error"),
            "response {name:?}"
        );
    }
    // The error codes the server uses are the ones documented.
    let codes: BTreeSet<&str> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    for entry in std::fs::read_dir(src).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // Codes appear as string literals next to a StatusCode or in the constructors.
        for code in [
            "invalid",
            "bad_json",
            "bad_body",
            "payload_too_large",
            "bad_authorization",
            "unsupported_media_type",
            "unauthorized",
            "not_found",
            "method_not_allowed",
            "conflict",
            "unavailable",
            "internal",
        ] {
            if text.contains(&format!("\"{code}\"")) {
                assert!(
                    codes.contains(code),
                    "code {code} is used but not documented"
                );
            }
        }
    }
}
