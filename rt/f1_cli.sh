set -u
T=$(mktemp -d); export XDG_CACHE_HOME=$T HOME=$T
PY=/work/wt/redteam/.venv/bin/python
CLI=/work/wt/redteam/.venv/bin/koyeb-auth
$PY -m koyeb_auth fake-api --port 18765 >/dev/null 2>&1 & FAKE=$!
sleep 1.5
export KOYEB_URL=http://127.0.0.1:18765 KOYEB_EMAIL=demo@koyeb.com
printf 'demo-password\n' | $CLI login --password-stdin; echo "login rc=$?"
F=$(find $T -name tokens.json)
$PY - "$F" <<'P'
import json,sys; p=sys.argv[1]; d=json.load(open(p))
for e in d["tokens"].values(): e["password_hash"]="\u00e9"*64
json.dump(d,open(p,"w"))
P
echo "--- status (saved login, no password)"; $CLI status --offline 2>&1 | tail -3; echo "rc=$?"
echo "--- status with a password"; KOYEB_PASSWORD=demo-password $CLI status --offline 2>&1 | tail -3
echo "--- token with a password"; KOYEB_PASSWORD=demo-password $CLI token 2>&1 | tail -3
echo "--- logout with a password"; KOYEB_PASSWORD=demo-password $CLI logout 2>&1 | tail -3
kill $FAKE; rm -rf $T
