set -u
T=$(mktemp -d); export XDG_CACHE_HOME=$T HOME=$T
PY=/work/wt/redteam/.venv/bin/python
CLI=/work/wt/redteam/.venv/bin/koyeb-auth
$PY -m koyeb_auth fake-api --port 18766 >/dev/null 2>&1 & FAKE=$!
sleep 1.5
export KOYEB_URL=http://127.0.0.1:18766
printf 'demo-password\n' | KOYEB_EMAIL=demo@koyeb.com $CLI login --password-stdin >/dev/null; echo "login rc=$?"
echo "--- status, no env email"; $CLI status --offline; echo "rc=$?"
echo "--- status, KOYEB_EMAIL only"; KOYEB_EMAIL=demo@koyeb.com $CLI status --offline; echo "rc=$?"
echo "--- token, KOYEB_EMAIL only"; KOYEB_EMAIL=demo@koyeb.com $CLI token >/dev/null; echo "rc=$?"
F=$(find $T -name tokens.json)
$PY - "$F" <<'P'
import json,sys; p=sys.argv[1]; d=json.load(open(p))
for e in d["tokens"].values(): e["password_hash"]="\u00e9"*64
json.dump(d,open(p,"w"))
P
echo "--- planted; status, no env email"; $CLI status --offline >/dev/null 2>&1; echo "rc=$?"
echo "--- planted; token, no env email"; $CLI token 2>&1 >/dev/null | tail -1; echo "rc=$?"
echo "--- planted; KOYEB_EMAIL+PASSWORD token traceback depth"; KOYEB_EMAIL=demo@koyeb.com KOYEB_PASSWORD=demo-password $CLI token 2>&1 | grep -c 'File "'
kill $FAKE; rm -rf $T
