"""pjsua2 (PyPI pjsua2-python, PJSIP 2.15) registers with Confab using digest.

Usage: python3 register.py HOST:PORT TRANSPORT(udp|tcp) USER PASSWORD DOMAIN
Prints the REGISTER requests PJSIP sent (the wire log, level 5 lines between
"TX" markers are kept whole) and finally "REGISTERED <code>" or "FAILED <code> <reason>".
Exits 0 on a 2xx to REGISTER, 1 otherwise (or after 20 s).
"""

import os
import sys
import time

import pjsua2 as pj

server, transport, user, password, domain = sys.argv[1:6]


class Log(pj.LogWriter):
    def write(self, entry):
        # Only the SIP messages (level <= 5 in PJSIP's numbering), whole.
        sys.stdout.write(entry.msg)
        sys.stdout.flush()


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.code = None
        self.reason = ""

    def onRegState(self, prm):
        self.code = prm.code
        self.reason = prm.reason


ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.uaConfig.userAgent = "pjsua2-confab-test"
cfg.logConfig.level = 5
cfg.logConfig.consoleLevel = 5
log = Log()
cfg.logConfig.writer = log
cfg.logConfig.decor = 0
cfg.medConfig.noVad = True
ep.libInit(cfg)
ep.audDevManager().setNullDev()
tcfg = pj.TransportConfig()
tcfg.port = 0
tcfg.boundAddress = "127.0.0.1"
kind = pj.PJSIP_TRANSPORT_TCP if transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
ep.transportCreate(kind, tcfg)
ep.libStart()

acfg = pj.AccountConfig()
acfg.idUri = f"sip:{user}@{domain}"
acfg.regConfig.registrarUri = f"sip:{domain}"
acfg.regConfig.timeoutSec = 300
route = f"sip:{server};lr" + (";transport=tcp" if transport == "tcp" else "")
acfg.sipConfig.proxies.append(route)
cred = pj.AuthCredInfo("digest", "*", user, 0, password)
acfg.sipConfig.authCreds.append(cred)
acc = Account()
acc.create(acfg)

deadline = time.time() + 20
while acc.code is None or acc.code < 200:
    ep.libHandleEvents(50)
    if time.time() > deadline:
        break

code, reason = acc.code, acc.reason
if code is not None and 200 <= code < 300:
    print(f"\nREGISTERED {code}", flush=True)
    status = 0
else:
    print(f"\nFAILED {code} {reason}", flush=True)
    status = 1
# Leave the binding in place: no un-REGISTER (PJSIP would send one on shutdown).
os._exit(status)
