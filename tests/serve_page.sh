# The page reel serve shows, in a real browser (headless Chromium driven through WebDriver): type a
# review, press Classify, and the page shows the class the API gives for that review, with its
# probability; a screenshot is kept (work_serve_page/page.png). Then the language model's page writes
# text from a prime, for a recurrent LM and for a GPT of short context.
source "$(dirname "$0")/lib.sh"

# Debian's python3-selenium lives in /usr/bin/python3's packages (another python3 may come first on PATH)
SELENIUM_PYTHON=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import selenium" 2>/dev/null; then SELENIUM_PYTHON=$candidate; break; fi
done
# scripts/install-deps installs all three, so one missing is a failure, not a skip
missing=""
command -v chromium >/dev/null || missing+=" chromium"
command -v chromedriver >/dev/null || missing+=" chromium-driver (chromedriver)"
[ -n "$SELENIUM_PYTHON" ] || missing+=" python3-selenium"
if [ -n "$missing" ]; then
  fail "the browser test needs Debian's chromium, chromium-driver and python3-selenium; missing:$missing (run scripts/install-deps)"
  finish
fi

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "train a classifier" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bow"
start_server bow "$WORK/bow/ckpt_best.h5"

cat >"$WORK/browse.py" <<'PY'
import json, sys, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

port, mode, shot = sys.argv[1], sys.argv[2], sys.argv[3]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
# no sandbox (tests may run as root); nothing but the page may use the network
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
             "--window-size=900,700"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(f"http://127.0.0.1:{port}/")
    wait = WebDriverWait(driver, 20)
    if mode == "classify":
        review = "A wonderful, elegant film with a brilliant cast. I loved every minute of it."
        box = wait.until(EC.visibility_of_element_located((By.ID, "review")))
        box.send_keys(review)
        driver.find_element(By.ID, "predict").click()
        label = wait.until(EC.visibility_of_element_located((By.ID, "label"))).text
        api = json.load(urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/predict", json.dumps({"text": review}).encode(),
            {"Content-Type": "application/json"})))["predictions"][0]
        shown = driver.find_element(By.ID, "result").text
        percent = f"{100 * api['probability']:.1f}% {api['label']}"
        assert label == api["label"], (label, api)
        assert percent in shown, (percent, shown)
        print(f"the page shows {label} ({percent}) for the typed review")
    else:
        prime = wait.until(EC.visibility_of_element_located((By.ID, "prime")))
        prime.send_keys("the film")
        driver.find_element(By.ID, "write").click()
        sample = wait.until(EC.visibility_of_element_located((By.CLASS_NAME, "sample"))).text
        assert sample.startswith("the film ") and len(sample.split()) > 5, sample
        print(f"the page wrote: {sample[:80]}")
    driver.save_screenshot(shot)
finally:
    driver.quit()
PY
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$1")" -gt 5000 ]; }
if "$SELENIUM_PYTHON" "$WORK/browse.py" "$PORT" classify "$WORK/page.png" >"$WORK/browse.txt" 2>&1; then
  pass "$(tail -1 "$WORK/browse.txt")"; else fail "the classifier page"; cat "$WORK/browse.txt" >&2; fi
is_png "$WORK/page.png" && pass "screenshot saved: $WORK/page.png" || fail "no screenshot"

write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_ok "train a language model" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm"
start_server lm "$(ls "$WORK/lm"/ckpt_0*.h5 | sort | tail -1)"
if "$SELENIUM_PYTHON" "$WORK/browse.py" "$PORT" generate "$WORK/page_lm.png" >"$WORK/browse.txt" 2>&1; then
  pass "$(tail -1 "$WORK/browse.txt")"; else fail "the language model's page"; cat "$WORK/browse.txt" >&2; fi
is_png "$WORK/page_lm.png" && pass "screenshot saved: $WORK/page_lm.png" || fail "no screenshot of the LM page"

# A GPT of context 32: the page asks for no more tokens than fit (the default of 60 would not)
write_small_gpt_config "$WORK/gpt.ini" "$WORK/data"
expect_ok "train a GPT" reel train "$WORK/gpt.ini" --run-dir "$WORK/gpt"
start_server gpt "$(ls "$WORK/gpt"/ckpt_0*.h5 | sort | tail -1)"
if "$SELENIUM_PYTHON" "$WORK/browse.py" "$PORT" generate "$WORK/page_gpt.png" >"$WORK/browse.txt" 2>&1; then
  pass "GPT: $(tail -1 "$WORK/browse.txt")"; else fail "the GPT's page"; cat "$WORK/browse.txt" >&2; fi
is_png "$WORK/page_gpt.png" && pass "screenshot saved: $WORK/page_gpt.png" || fail "no screenshot of the GPT page"
finish
