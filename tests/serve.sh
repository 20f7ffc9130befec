# reel serve: the HTTP service on loopback. Answers against reel predict and reel generate, every bad
# request (the server must answer 4xx and live on), a bounded load test of concurrent clients, the
# request log, and a clean stop on SIGTERM. The page in a browser is tests/serve_page.sh.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "train a classifier" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bow"
ckpt="$WORK/bow/ckpt_best.h5"

start_server bow "$ckpt" --max-texts 4 --max-body 4096
expect_status "health" 200 '"status":"ok".*"classes":\["neg","pos"\]' GET /healthz
expect_status "the page" 200 '<title>reel</title>' GET /

# answers equal reel predict's, for one text and a list (an empty text answered in its place)
texts='["A wonderful, elegant film. I loved it.", "ugly and bloated, a boring mess", "", "not good at all"]'
request POST /v1/predict "{\"texts\": $texts}" | head -n -1 >"$WORK/served.json"
python3 -c "import json,sys; [print(t) for t in json.loads(sys.argv[1])]" "$texts" >"$WORK/texts.txt"
"$REEL_BIN" predict "$ckpt" "$WORK/texts.txt" --json >"$WORK/predicted.jsonl"
python3 - "$WORK/served.json" "$WORK/predicted.jsonl" <<'PY' && pass "served predictions equal reel predict's" || fail "served and predicted differ"
import json, sys
served = json.load(open(sys.argv[1]))["predictions"]
local = [json.loads(l) for l in open(sys.argv[2])]
assert len(served) == 4 and len(local) == 4
for s, l in zip(served, local):
    if "error" in l:
        assert s["error"] == l["error"], (s, l)
        continue
    assert s["label"] == l["label"] and s["tokens"] == l["tokens"], (s, l)
    for k in l["probabilities"]:
        assert abs(s["probabilities"][k] - l["probabilities"][k]) < 1e-6, (s, l)
PY
expect_status "one text" 200 '"predictions":\[\{"label":"(neg|pos)","probability":' POST /v1/predict '{"text": "a fine film"}'

# bad requests: each a JSON error with a 4xx status
expect_status "malformed JSON" 400 '"error":"malformed JSON at byte offset 8 of the body"' POST /v1/predict '{"text": '
expect_status "trailing text" 400 'text after the value' POST /v1/predict '{"text": "a"} x'
expect_status "empty body" 400 'empty body: expected a JSON object' POST /v1/predict ''
expect_status "not an object" 400 'the body must be a JSON object' POST /v1/predict '["a"]'
expect_status "text of the wrong type" 400 '"error":"\\"text\\" must be a string"' POST /v1/predict '{"text": 3}'
expect_status "texts not a list" 400 '"texts\\" must be a list of strings' POST /v1/predict '{"texts": "a"}'
expect_status "a text in the list not a string" 400 '"texts\\"\[1\] must be a string' POST /v1/predict '{"texts": ["a", null]}'
expect_status "text and texts" 400 'give either' POST /v1/predict '{"text": "a", "texts": ["b"]}'
expect_status "neither" 400 'give either' POST /v1/predict '{"txt": "a"}'
expect_status "too many texts" 413 '5 texts in one request: at most 4' POST /v1/predict '{"texts": ["a","b","c","d","e"]}'
big=$(python3 -c 'import json; print(json.dumps({"text": "word " * 2000}))')
expect_status "a body over --max-body" 413 'larger than 4096 bytes' POST /v1/predict "$big"
code=$(head -c 10000 /dev/zero | tr '\0' 'a' | curl -s -o "$WORK/chunked.txt" -w '%{http_code}' -X POST \
  -H 'Transfer-Encoding: chunked' --data-binary @- "http://127.0.0.1:$PORT/v1/predict")
[ "$code" = 413 ] && grep -q 'larger than 4096 bytes' "$WORK/chunked.txt" && pass "a chunked body over the limit (413)" \
  || fail "chunked oversize body: $code $(cat "$WORK/chunked.txt")"
expect_status "unknown path" 404 'no such path: /v2/predict' POST /v2/predict '{}'
expect_status "wrong method" 405 'GET /v1/predict: use POST' GET /v1/predict
curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/v1/predict" | grep -qi '^Allow: POST' && pass "405 names the allowed method" \
  || fail "no Allow header"
expect_status "generation from a classifier" 404 'is a classifier; generation needs a language model' POST /v1/generate '{}'
# JSON must be UTF-8: the first bad sequence is named with its byte offset in the body
expect_status "a byte that is never UTF-8" 400 'not valid UTF-8: a byte that never occurs in UTF-8 at byte offset 11 ' \
  POST /v1/predict $'{"text": "a\xffb"}'
expect_status "an overlong encoding" 400 'not valid UTF-8: an overlong encoding at byte offset 10 ' \
  POST /v1/predict $'{"text": "\xc0\xaf and \xe0\x80\xaf"}'
expect_status "a three-byte overlong encoding" 400 'not valid UTF-8: an overlong encoding at byte offset 12 ' \
  POST /v1/predict $'{"text": "ab\xe0\x80\xaf"}'
expect_status "a sequence cut short at the end" 400 'not valid UTF-8: a sequence cut short by the end at byte offset 14 ' \
  POST /v1/predict $'{"text": "ab"}\xe2\x82'
expect_status "a surrogate" 400 'not valid UTF-8: a UTF-16 surrogate at byte offset 10 ' \
  POST /v1/predict $'{"text": "\xed\xa0\x80"}'
expect_status "valid UTF-8 of two, three and four bytes" 200 '"predictions":\[\{"label"' \
  POST /v1/predict $'{"text": "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac"}'
# a 200 KB header: a JSON 431 (the connection's memory pool is larger than the limit, so the handler sees it)
python3 -c 'print("X-Big: " + "a" * 200000)' >"$WORK/big_header.txt"
code=$(curl -s -D "$WORK/431.headers" -o "$WORK/431.json" -w '%{http_code}' -H @"$WORK/big_header.txt" \
  "http://127.0.0.1:$PORT/healthz" || true)
[ "$code" = 431 ] && grep -qi '^Content-Type: application/json' "$WORK/431.headers" \
  && python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert "header fields take 200" in e and "at most 65536" in e, e' "$WORK/431.json" \
  && pass "a 200 KB header (431 with a JSON error)" || fail "200 KB header: $code $(head -c 300 "$WORK/431.json" 2>/dev/null)"
code=$(curl -s -o "$WORK/431.json" -w '%{http_code}' -H @"$WORK/big_header.txt" -X POST --data-binary '{"text": "a"}' \
  "http://127.0.0.1:$PORT/v1/predict" || true)
[ "$code" = 431 ] && grep -q 'header fields take' "$WORK/431.json" && pass "a 200 KB header on a POST (431)" \
  || fail "200 KB header on a POST: $code"
# beyond the connection's memory (1 MiB) libmicrohttpd answers 431 itself, with its own HTML body (no
# callback sees such a request); curl cannot send it (its own limit is 1 MB), so a socket does
python3 - "$PORT" <<'PY' && pass "a 3 MB header: 431 from libmicrohttpd" || fail "3 MB header not answered 431"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
try:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000000 + b"\r\n\r\n")
except OSError:
    pass  # the server stops reading once it has answered
line = s.recv(64).split(b"\r\n")[0]
assert line == b"HTTP/1.1 431 Request Header Fields Too Large", line
PY
expect_status "still serving after all that" 200 '"status":"ok"' GET /healthz

# a bounded load test: 8 clients x 500 requests on keep-alive connections, every answer checked
python3 - "$PORT" <<'PY' >"$WORK/load.txt" && pass "load test: $(cat "$WORK/load.txt")" || { fail "load test"; cat "$WORK/load.txt" >&2; }
import http.client, json, sys, threading, time
port, clients, per_client = int(sys.argv[1]), 8, 500
bodies = [json.dumps({"text": t}) for t in ["a wonderful elegant film", "ugly and bloated", "the film was fine"]]
latencies, errors, lock = [], [], threading.Lock()
def client(c):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(per_client):
        body = bodies[(c + i) % len(bodies)]
        start = time.perf_counter()
        conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        ok = response.status == 200 and "label" in json.loads(data)["predictions"][0]
        with lock:
            latencies.append(elapsed)
            if not ok: errors.append((response.status, data[:100]))
threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
start = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
wall = time.perf_counter() - start
latencies.sort()
n = len(latencies)
print(f"{n} requests from {clients} clients, {len(errors)} errors, p50 {1e3 * latencies[n // 2]:.2f} ms, "
      f"p99 {1e3 * latencies[int(n * 0.99)]:.2f} ms, {n / wall:.0f} requests/s")
sys.exit(0 if n == clients * per_client and not errors else 1)
PY
# one log line per request, with the status
lines=$(grep -c '"POST /v1/predict" 200 ' "$WORK/bow.log")
[ "$lines" -ge 4002 ] && pass "the log has a line per request ($lines predict lines)" || fail "log lines: $lines"
grep -Eq '^[0-9T:-]+Z 127\.0\.0\.1 "POST /v1/predict" 400 [0-9]+ [0-9.]+ ms$' "$WORK/bow.log" && pass "log line format" \
  || fail "log line format: $(grep 400 "$WORK/bow.log" | head -1)"

# SIGTERM: a clean stop, status 0, the port closed
kill -TERM "$PID"
status=0
for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then fail "still running 5 s after SIGTERM"; else
  wait "$PID" || status=$?
  [ "$status" -eq 0 ] && grep -q "SIGTERM received, stopping" "$WORK/bow.log" && pass "SIGTERM stops it cleanly" \
    || fail "exit status $status after SIGTERM"
fi
curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && fail "the port still answers" || pass "the port is closed"

# a language model: generation as reel generate writes it, perplexity as reel predict computes it
write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_ok "train a language model" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm"
lm=$(ls "$WORK/lm"/ckpt_0*.h5 | sort | tail -1)
start_server lm "$lm"
expect_status "LM health" 200 '"objective":"next_token"' GET /healthz
request POST /v1/generate '{"prime": "the film", "length": 20, "temperature": 0.8, "seed": 3, "stop_at_eod": false}' \
  | head -n -1 >"$WORK/gen.json"
"$REEL_BIN" generate "$lm" --prime "the film" --length 20 --temperature 0.8 --seed 3 >"$WORK/gen.txt"
python3 - "$WORK/gen.json" "$WORK/gen.txt" <<'PY' && pass "served generation equals reel generate's" || fail "generation differs"
import json, sys
served = json.load(open(sys.argv[1]))
line = [l for l in open(sys.argv[2]) if l.startswith("[1] ")][0]
continuation = line.split(" | ", 1)[1].strip()
assert served["samples"] == [continuation], (served, continuation)
assert served["prime"] == "the film" and served["prime_tokens"] == 2
PY
# ending at <eod> (the service's default): the same samples as reel generate --stop-at-eod, less the <eod>
# the service leaves out; long enough that samples end at different points, so each stops on its own
request POST /v1/generate '{"prime": "the", "length": 400, "temperature": 1.0, "seed": 5, "samples": 8}' \
  | head -n -1 >"$WORK/gen_eod.json"
"$REEL_BIN" generate "$lm" --prime "the" --length 400 --temperature 1.0 --seed 5 --samples 8 --stop-at-eod >"$WORK/gen_eod.txt"
python3 - "$WORK/gen_eod.json" "$WORK/gen_eod.txt" <<'PY' && pass "served generation stops at <eod> as reel generate's" \
  || fail "generation with stop_at_eod differs"
import json, sys
served = json.load(open(sys.argv[1]))["samples"]
lines = [l.split(" |", 1)[1].strip() for l in open(sys.argv[2]) if l.startswith("[")]
ended = [l.endswith("<eod>") for l in lines]
# both outcomes must occur, or the check says nothing about where a sample stops
assert any(ended) and len(set(len(l) for l in lines)) > 1, lines
local = [l[: -len("<eod>")].rstrip() if e else l for l, e in zip(lines, ended)]
assert served == local, (served, local)
PY
a=$(request POST /v1/generate '{"prime": "the", "seed": 9, "samples": 3}')
b=$(request POST /v1/generate '{"prime": "the", "seed": 9, "samples": 3}')
[ "$a" = "$b" ] && python3 -c "import json,sys; assert len(json.loads(sys.argv[1])['samples']) == 3" "$(head -n -1 <<<"$a")" \
  && pass "the same seed gives the same samples" || fail "generation is not reproducible"
request POST /v1/predict '{"texts": ["the film was good", "good film the was"]}' | head -n -1 >"$WORK/ppl.json"
printf 'the film was good\ngood film the was\n' | "$REEL_BIN" predict "$lm" --json >"$WORK/ppl.jsonl"
python3 - "$WORK/ppl.json" "$WORK/ppl.jsonl" <<'PY' && pass "served perplexity equals reel predict's" || fail "perplexities differ"
import json, sys
served = json.load(open(sys.argv[1]))["predictions"]
local = [json.loads(l) for l in open(sys.argv[2])]
for s, l in zip(served, local):
    assert abs(s["perplexity"] - l["perplexity"]) < 1e-6 * l["perplexity"], (s, l)
PY
expect_status "temperature out of range" 400 '"temperature\\" must be a number in \[0, 100\]' POST /v1/generate '{"temperature": -1}'
expect_status "too many samples" 400 '"samples\\" must be a number in \[1, 8\]' POST /v1/generate '{"samples": 100}'
expect_status "too long" 400 '"length\\" must be a number in \[0, 400\]' POST /v1/generate '{"length": 100000}'
expect_status "prime not a string" 400 '"prime\\" must be a string' POST /v1/generate '{"prime": ["a"]}'
expect_status "stop_at_eod not a bool" 400 'stop_at_eod' POST /v1/generate '{"stop_at_eod": "yes"}'
kill -TERM "$PID"; wait "$PID" || true

# start-up errors
expect_fail "not an address" "--host 'localhost:80': expected an IPv4 or IPv6 address" \
  "$REEL_BIN" serve "$ckpt" --host localhost:80 --port 0
start_server taken "$ckpt"
expect_fail "a port in use" "cannot listen on 127.0.0.1 port $PORT" "$REEL_BIN" serve "$ckpt" --port "$PORT"
kill -TERM "$PID"; wait "$PID" || true
expect_fail "not a checkpoint" "nothing.h5" "$REEL_BIN" serve "$WORK/nothing.h5"
finish
