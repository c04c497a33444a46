// JsSIP (with jssip-node-websocket) registers with Confab over WebSocket with digest, sends
// one MESSAGE to a peer and waits for one MESSAGE from it.
// Usage: node message.js <ws-url> <user> <password> <domain> <peer-user>
// Prints (one line each, for the test to follow):
//   REGISTERED <status>           after the 200 to REGISTER
//   SENT <status>                 after the 200 to our MESSAGE
//   RECEIVED <from> <body>        when a MESSAGE from the peer arrives (answered 200 by JsSIP)
// Exits 0 once all three happened, 1 on any failure or after 25 s.
'use strict';

const JsSIP = require('jssip');
const NodeWebSocket = require('jssip-node-websocket');

const [url, user, password, domain, peer] = process.argv.slice(2);
if (!peer) {
  console.error('usage: node message.js <ws-url> <user> <password> <domain> <peer-user>');
  process.exit(2);
}

const socket = new NodeWebSocket(url);
const ua = new JsSIP.UA({
  sockets: [socket],
  uri: `sip:${user}@${domain}`,
  password,
  register: true,
  register_expires: 300,
  connection_recovery_min_interval: 30,
  connection_recovery_max_interval: 30,
});

let sent = false;
let received = false;
const timer = setTimeout(() => {
  console.error(`timeout: sent=${sent} received=${received}`);
  process.exit(1);
}, 25000);

function maybeDone() {
  if (sent && received) {
    clearTimeout(timer);
    // Leave the registration in place (the test checks the binding), close the socket.
    setTimeout(() => process.exit(0), 300);
  }
}

ua.on('registered', (e) => {
  console.log(`REGISTERED ${e.response.status_code}`);
  ua.sendMessage(`sip:${peer}@${domain}`, `hello ${peer}, this is ${user} over WebSocket`, {
    contentType: 'text/plain',
    eventHandlers: {
      succeeded: (ev) => {
        console.log(`SENT ${ev.response.status_code}`);
        sent = true;
        maybeDone();
      },
      failed: (ev) => {
        const r = ev.response;
        console.error(`MESSAGE failed: ${ev.cause} ${r ? r.status_code + ' ' + r.reason_phrase : ''}`);
        process.exit(1);
      },
    },
  });
});
ua.on('registrationFailed', (e) => {
  const r = e.response;
  console.error(`REGISTER failed: ${e.cause} ${r ? r.status_code + ' ' + r.reason_phrase : ''}`);
  process.exit(1);
});
ua.on('newMessage', (e) => {
  if (e.originator !== 'remote') return;
  const body = e.request.body;
  console.log(`RECEIVED ${e.request.from.uri.toString()} ${body}`);
  received = true;
  maybeDone();
});
ua.on('disconnected', (e) => {
  if (e && e.error) {
    console.error(`WebSocket error: ${e.code || ''} ${e.reason || ''}`);
    process.exit(1);
  }
});
ua.start();
