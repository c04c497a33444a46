#!/bin/sh
# Seed the fuzz corpora from the RFC 4475 / RFC 5118 torture messages shipped by the
# sipx-testkit crate (a dev-dependency of confab-sip, so it is in the cargo registry after
# `cargo test -p confab-sip`) and from the committed regression inputs.
set -eu
cd "$(dirname "$0")"
kit=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/sipx-testkit-1.0.1 | head -n1)
for t in parse stream_framing; do
    mkdir -p "corpus/$t"
    cp "$kit"/corpus/rfc4475/*.dat "corpus/$t/"
    for f in "$kit"/corpus/rfc5118/*; do
        case "$f" in *README.md) continue ;; esac
        b=$(basename "$f")
        cp "$f" "corpus/$t/5118-$b-lf"
        sed 's/$/\r/' "$f" > "corpus/$t/5118-$b-crlf"
    done
    cp ../tests/regressions/* "corpus/$t/" 2>/dev/null || true
done
# stream shapes: keep-alives and back-to-back messages
printf '\r\n\r\n' > corpus/stream_framing/ping
cat "$kit/corpus/rfc4475/wsinv.dat" "$kit/corpus/rfc4475/esc01.dat" > corpus/stream_framing/two-messages
printf '\r\n' | cat - "$kit/corpus/rfc4475/mpart01.dat" > corpus/stream_framing/pong-then-message
echo "seeded: $(ls corpus/parse | wc -l) parse, $(ls corpus/stream_framing | wc -l) stream_framing"
