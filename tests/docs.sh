#!/usr/bin/env bash
# The documentation against the program: README.md and docs/*.md may only name what exists. Checked:
#   - every `reel <command> ... --option` in a code block or inline code: the command exists and its
#     --help mentions the option (also `build/reel`, and `mpirun ... reel`);
#   - every configuration key named as `[section] key`, as `--set section.key=value`, as inline
#     `section.key`, or in an ini code block: `reel train --help-config` lists it in that section;
#   - every `bench/X.sh --option` / `scripts/X --option`: the script mentions the option;
#   - every path under configs/, jobs/, scripts/, bench/, tests/, include/, src/ and docs/ exists (a glob
#     must match something);
#   - every relative markdown link resolves to a file, and an #anchor to a heading of that file;
#   - the table of labels in docs/development.md (| label | tests | what |) lists exactly the tests that
#     ctest has under each label, and every label ctest knows;
#   - every command's --help against its parser (src/cli/cmd_<command>.c's struct option tables): each
#     option taken is in the help, each option the help lists (a line's start, the usage line) is taken;
#   - the comments of configs/*.ini: their reel commands' options, --set keys, [section] keys and paths;
#   - a default quoted in a | key | default | table or as "`key`, default X": --help-config's default;
#   - docs/configuration.md's list of the owners --help-config lists keys by names every model type, and
#     the first paragraph of docs/classifiers.md or docs/language-models.md introduces each;
#   - docs/file-formats.md's metrics table: each objective's /train and /eval series as its source declares.
# Docs rot silently: a renamed option or key, a moved script or a retitled section would otherwise only
# show when a reader tries it. Everything comes from --help output and a few source files (src/cli,
# src/objectives), so the test takes seconds.
source "$(dirname "$0")/lib.sh"

SRC=$REEL_SOURCE_DIR
# python3 comes with scripts/install-deps (python3-h5py, python3-torch): missing, it is a failure, not a skip
command -v python3 >/dev/null || { fail "python3 is missing: run scripts/install-deps"; finish; }

# The program's own account of itself: the command list, each command's --help, the configuration keys.
reel --help >"$WORK/help_main.txt" 2>&1 || true
commands=$(awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' "$WORK/help_main.txt")
[ -n "$commands" ] || fail "reel --help lists no commands (the format changed?)"
mkdir -p "$WORK/help"
# each start of reel costs about half a second (MPI's initialisation), so they run side by side
# (each records its exit status: an error message must not pass for a command's help)
for c in $commands; do { status=0; reel "$c" --help >"$WORK/help/$c.txt" 2>&1 || status=$?; echo "$status" >"$WORK/help_status_$c"; } & done
config_status=0
reel train --help-config >"$WORK/help_config.txt" 2>&1 || config_status=$?
wait
[ "$config_status" -eq 0 ] || fail "reel train --help-config failed (status $config_status)"
for c in $commands; do
  [ -s "$WORK/help/$c.txt" ] || fail "reel $c --help printed nothing"
  [ "$(cat "$WORK/help_status_$c")" = 0 ] || fail "reel $c --help failed (status $(cat "$WORK/help_status_$c"))"
done

# The registered tests and their labels, from the build directory that holds this reel (build/ or
# build/asan): ctest reads its CTestTestfile.cmake without running anything.
BUILD_DIR=$(dirname "$REEL_BIN")
command -v ctest >/dev/null || fail "ctest is missing (scripts/install-deps installs cmake)"
(cd "$BUILD_DIR" && ctest --show-only=json-v1) >"$WORK/ctest.json" 2>"$WORK/ctest.err" ||
  fail "ctest --show-only=json-v1 failed in $BUILD_DIR: $(cat "$WORK/ctest.err")"
export CTEST_JSON="$WORK/ctest.json"

docs=("$SRC/README.md")
for f in "$SRC"/docs/*.md; do [ -f "$f" ] && docs+=("$f"); done
[ "${#docs[@]}" -ge 2 ] || fail "no docs/*.md pages next to README.md"

python3 - "$SRC" "$WORK/help" "$WORK/help_config.txt" "${docs[@]}" >"$WORK/report.txt" 2>&1 <<'EOF' || true
import glob, json, os, re, sys

src, help_dir, config_help = sys.argv[1], sys.argv[2], sys.argv[3]
pages = sys.argv[4:]
problems, counts = [], {"options": 0, "keys": 0, "paths": 0, "links": 0, "script_options": 0, "tests": 0,
                     "cli_options": 0, "config_comments": 0, "defaults": 0, "owners": 0, "model_types": 0, "series": 0}

helps = {os.path.splitext(n)[0]: open(os.path.join(help_dir, n)).read() for n in os.listdir(help_dir)}
keys, defaults, owners, model_types, objectives = set(), {}, set(), [], set()
for line in open(config_help):
    f = line.split()
    # rows: owner words, then section, key, type, default, ...; the owner is one word, or "objective <name>"
    if len(f) >= 5 and f[0].lower() != "for":
        row = f[1:] if f[0] == "objective" else f
        if f[0] == "objective": objectives.add(f[1])
        keys.add((row[1], row[2]))
        defaults.setdefault(row[2], set()).add(row[4])
        if f[0] not in ("all", "objective"): owners.update(f[0].split("|"))
        if row[1:3] == ["model", "type"] and len(row) > 5: model_types = row[5].split("|")
if not keys: problems.append("reel train --help-config lists no keys (the format changed?)")
if not owners: problems.append("reel train --help-config lists no model type's own keys (the format changed?)")
sections = {s for s, _ in keys}

def slug(heading):
    # GitHub's anchors: lowercase, punctuation other than '-' and '_' dropped, spaces to '-'
    text = re.sub(r"`|\*", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")

def anchors(path):
    found, fenced = set(), False
    for line in open(path):
        if line.startswith("```"): fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found

def where(page, n): return "%s:%d" % (os.path.relpath(page, src), n)

SEP = re.compile(r"\s(?:\||&&|\|\||;|>|2>|<)\s|\s#\s|\)$")
OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")

def check_option(cmd, opt, loc, text):
    counts["options"] += 1
    if cmd not in helps:
        problems.append("%s: `reel %s` is not a reel command (in: %s)" % (loc, cmd, text.strip())); return
    if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", helps[cmd]):
        problems.append("%s: `reel %s --help` does not know %s (in: %s)" % (loc, cmd, opt, text.strip()))

def check_key(section, key, loc, text):
    if (section, key) == ("section", "key"): return  # the placeholder of `--set section.key=value`
    counts["keys"] += 1
    if (section, key) not in keys:
        hint = "no section [%s]" % section if section not in sections else "no key %s in [%s]" % (key, section)
        problems.append("%s: reel train --help-config has %s (in: %s)" % (loc, hint, text.strip()))

def check_code(code, loc, prose=False):
    """A command line or an inline code span (prose: a comment, where 'reel' may be followed by any word)."""
    for m in re.finditer(r"(?:^|[\s(=$])(?:\S*/)?reel\s+([a-z]+)((?:\s+\S+)*)", code):
        cmd, rest = m.group(1), m.group(2)
        if cmd not in helps:
            if prose: continue
            problems.append("%s: `reel %s` is not a reel command (in: %s)" % (loc, cmd, code.strip()))
            continue
        cut = SEP.search(rest)
        if cut: rest = rest[:cut.start()]
        for o in OPT.findall(rest):
            check_option(cmd, o, loc, code)
    for m in re.finditer(r"--set[ =](\w+)\.(\w+)=", code):
        check_key(m.group(1), m.group(2), loc, code)
    for m in re.finditer(r"(?:^|[\s(])((?:bench|scripts)/[\w.-]+)((?:\s+\S+)*)", code):
        script, rest = m.group(1), m.group(2)
        cut = SEP.search(rest)
        if cut: rest = rest[:cut.start()]
        path = os.path.join(src, script)
        if not os.path.isfile(path): continue  # reported by the path check
        body = open(path, errors="replace").read()
        for o in OPT.findall(rest):
            counts["script_options"] += 1
            if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", body):
                problems.append("%s: %s does not handle %s (in: %s)" % (loc, script, o, code.strip()))

FILE_EXTENSIONS = {"tok", "txt", "tsv", "ini", "h5", "json", "png", "vec", "md", "sh", "py", "c", "h"}
PATH = re.compile(r"(?<![\w./-])((?:configs|jobs|scripts|bench|tests|include|src|docs)/[\w.*/-]*[\w*/])")

for page in pages:
    fenced, lang, ini_section, carried = False, "", None, ""
    for n, line in enumerate(open(page), 1):
        loc = where(page, n)
        if not fenced and not line.startswith("```"):
            # inline code may run over a line break: carry a line with an open backtick into the next
            if carried and not line.strip():
                problems.append("%s: inline code opened and never closed in the paragraph above" % loc)
                carried = ""
            line = carried + line.rstrip("\n")
            if line.count("`") % 2:
                carried = line + " "
                continue
            carried = ""
        if line.startswith("```"):
            fenced = not fenced
            lang, ini_section = line[3:].strip(), None
            continue
        if fenced:
            if lang == "ini":
                s = re.match(r"\s*\[(\w+)\]", line)
                k = re.match(r"\s*(\w+)\s*=", line)
                if s: ini_section = s.group(1)
                elif k and ini_section: check_key(ini_section, k.group(1), loc, line)
            else:
                check_code(line, loc)
            spans = [line]
        else:
            spans = re.findall(r"`([^`]+)`", line)
            for s in spans: check_code(s, loc)
            for m in re.finditer(r"`\[(\w+)\]\s+(\w+)", line):
                check_key(m.group(1), m.group(2), loc, m.group(0))
            # `section.key` or `section.key=value` alone in inline code (not a file such as train.tok)
            for span in spans:
                m = re.fullmatch(r"(\w+)\.(\w+)(=\S*)?", span.strip())
                if m and m.group(1) in sections and m.group(2) not in FILE_EXTENSIONS:
                    check_key(m.group(1), m.group(2), loc, span)
            # relative links [text](target)
            for m in re.finditer(r"\]\(([^)\s]+)\)", line):
                target = m.group(1)
                if re.match(r"[a-z]+:", target): continue
                counts["links"] += 1
                path, _, anchor = target.partition("#")
                full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                if not os.path.exists(full):
                    problems.append("%s: link to %s: no such file" % (loc, target)); continue
                if anchor and full.endswith(".md") and anchor not in anchors(full):
                    problems.append("%s: link to %s: %s has no heading #%s" % (loc, target, os.path.relpath(full, src), anchor))
        for span in spans:
            for p in PATH.findall(span):
                counts["paths"] += 1
                if "*" in p:
                    if not glob.glob(os.path.join(src, p)):
                        problems.append("%s: %s matches no file" % (loc, p))
                elif not os.path.exists(os.path.join(src, p.rstrip("/"))):
                    problems.append("%s: %s does not exist" % (loc, p))

# Each command's --help against the options its parser takes (the struct option tables of
# src/cli/cmd_<command>.c): every option the parser takes is in the help, and every option the help lists
# at the start of one of its lines (its option list) or in its usage line is one the parser takes.
for cmd, text in sorted(helps.items()):
    path = os.path.join(src, "src", "cli", "cmd_%s.c" % cmd)
    if not os.path.isfile(path):
        problems.append("reel %s: no src/cli/cmd_%s.c to check its --help against" % (cmd, cmd)); continue
    tables = re.findall(r"struct option \w+\[\] = \{(.*?)\{NULL, 0, NULL, 0\}", open(path).read(), re.S)
    parsed = {"--" + n for t in tables for n in re.findall(r'\{"([a-z][a-z0-9-]*)"', t)}
    if not parsed:
        problems.append("src/cli/cmd_%s.c: no struct option table found (the layout changed?)" % cmd); continue
    listed = set()
    for line in text.splitlines():
        m = re.match(r"\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", line)
        if m: listed.add(m.group(1))
        if re.match(r"\s*(usage: |reel )", line): listed.update(re.findall(r"\[(--[a-z][a-z0-9-]*)", line))
    for o in sorted(parsed - {"--help"}):
        counts["cli_options"] += 1
        if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", text):
            problems.append("reel %s --help does not mention %s, which src/cli/cmd_%s.c takes" % (cmd, o, cmd))
    for o in sorted(listed - parsed):
        problems.append("reel %s --help lists %s, which src/cli/cmd_%s.c does not take" % (cmd, o, cmd))

# The comments of the shipped configurations name commands, options, keys and files as the pages do.
for ini in sorted(glob.glob(os.path.join(src, "configs", "*.ini"))):
    for n, line in enumerate(open(ini), 1):
        parts = re.split(r"(?:^|\s)[;#]", line.rstrip("\n"), maxsplit=1)
        if len(parts) < 2: continue
        comment, loc = parts[1], where(ini, n)
        counts["config_comments"] += 1
        check_code(comment, loc, prose=True)
        for m in re.finditer(r"\[(\w+)\]\s+(\w+)", comment):
            check_key(m.group(1), m.group(2), loc, m.group(0))
        for p in PATH.findall(comment):
            counts["paths"] += 1
            if not glob.glob(os.path.join(src, p)):
                problems.append("%s: %s does not exist" % (loc, p))

# Defaults the pages quote: a table with "key" and "default" columns, and "`key`, default X" or "`key`
# (default X" in the text (for a configuration key): X must be a default --help-config gives that key.
def same_value(a, b):
    try: return float(a) == float(b)
    except ValueError: return a == b

def check_default(key, value, loc, text):
    counts["defaults"] += 1
    if not any(same_value(value, d) for d in defaults.get(key, ())):
        problems.append("%s: reel train --help-config gives %s the default %s, not %s (in: %s)"
                        % (loc, key, " or ".join(sorted(defaults.get(key, {"(no such key)"}))), value, text.strip()))

QUOTED_DEFAULT = re.compile(r"`(\w+)`(?:,| \()\s*default (`[^`]+`|[0-9][0-9.e+-]*|true|false)(?![,.]?\d)(?=[\s,;)]|$)(?!\s*[x×*])")
for page in pages:
    fenced, header = False, None
    for n, line in enumerate(open(page), 1):
        if line.startswith("```"): fenced = not fenced; continue
        if fenced: continue
        if not line.startswith("|"):
            header = None
            for m in QUOTED_DEFAULT.finditer(line):
                if m.group(1) in defaults: check_default(m.group(1), m.group(2).strip("`"), where(page, n), m.group(0))
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None: header = [c.lower() for c in cells]; continue
        if "key" in header and "default" in header and len(cells) == len(header) and not set("".join(cells)) <= set("-: "):
            check_default(cells[header.index("key")].strip("`"), cells[header.index("default")].strip("`"),
                          where(page, n), line)

# docs/configuration.md says by which owners --help-config lists the keys: every model type with keys of its
# own must be among them (the paragraph that says "by owner").
conf = os.path.join(src, "docs", "configuration.md")
paragraph = next((p for p in open(conf).read().split("\n\n") if "by owner" in p), None)
if paragraph is None:
    problems.append("docs/configuration.md: no paragraph says by which owners --help-config lists the keys")
else:
    named = {w for span in re.findall(r"`([^`]+)`", paragraph) for w in span.split("|")}
    for o in sorted(owners):
        counts["owners"] += 1
        if o not in named:
            problems.append("docs/configuration.md: the owners by which --help-config lists the keys leave out %s" % o)

# Every model type reel has is introduced in the first paragraph of docs/classifiers.md or
# docs/language-models.md (as `type`, `[model] type = type` or `type = type`).
introduced = set()
for name in ("classifiers.md", "language-models.md"):
    text = open(os.path.join(src, "docs", name)).read()
    intro = text.split("\n\n")[1] if text.startswith("#") and text.count("\n\n") else ""
    introduced.update(span.split("=")[-1].strip() for span in re.findall(r"`([^`]+)`", intro))
if not model_types: problems.append("reel train --help-config has no choice list for [model] type (the format changed?)")
for t in model_types:
    counts["model_types"] += 1
    if t not in introduced:
        problems.append("model type %s is introduced in neither docs/classifiers.md's nor docs/language-models.md's "
                        "first paragraph" % t)

# The metrics table of docs/file-formats.md (| objective | `/train` | `/eval` |) names exactly the series
# each objective's source declares (train_series[] and eval_series[] of src/objectives/<objective>.c).
formats = os.path.join(src, "docs", "file-formats.md")
rows = {}
for n, line in enumerate(open(formats), 1):
    m = re.match(r"\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|\s*$", line)
    if m: rows[m.group(1)] = (n, set(re.findall(r"`(\w+)`", m.group(2))), set(re.findall(r"`(\w+)`", m.group(3))))
objective_files = sorted(glob.glob(os.path.join(src, "src", "objectives", "*.c")))
for path in objective_files:
    code = open(path).read()
    declared = [set(re.findall(r'\{"(\w+)", REEL_COLUMN', body)) for body in
                (re.search(r"reel_series %s\[\] = \{(.*?)\};" % name, code, re.S) for name in ("train_series", "eval_series"))
                if body for body in [body.group(1)]]
    if len(declared) != 2: continue  # not an objective (no series of its own)
    name = os.path.splitext(os.path.basename(path))[0]
    counts["series"] += 1
    objectives.discard(name)
    if name not in rows:
        problems.append("docs/file-formats.md: the metrics table has no row for the objective %s" % name); continue
    n, train_doc, eval_doc = rows[name]
    for table, doc, have in (("/train", train_doc, declared[0]), ("/eval", eval_doc, declared[1])):
        for series in sorted(have - doc):
            problems.append("docs/file-formats.md:%d: %s's %s series %s is not listed" % (n, name, table, series))
        for series in sorted(doc - have):
            problems.append("docs/file-formats.md:%d: the table lists %s among %s's %s series; %s does not declare it"
                            % (n, series, name, table, os.path.relpath(path, src)))

for name in sorted(objectives):
    problems.append("src/objectives/%s.c: no train_series[] and eval_series[] found (the layout changed?)" % name)

# The label table of docs/development.md against ctest: each row's tests are exactly ctest's tests of that
# label, and no label is left out.
registered = {}
try:
    for t in json.load(open(os.environ["CTEST_JSON"]))["tests"]:
        labels = [p["value"] for p in t.get("properties", []) if p["name"] == "LABELS"]
        for label in (labels[0] if labels else ["(no label)"]):
            registered.setdefault(label, set()).add(t["name"])
except (OSError, ValueError, KeyError) as e:
    problems.append("cannot read ctest's list of tests (%s): %s" % (os.environ.get("CTEST_JSON"), e))
dev = os.path.join(src, "docs", "development.md")
documented, in_table = {}, False
for n, line in enumerate(open(dev), 1):
    if re.match(r"\|\s*label\s*\|\s*tests\s*\|", line): in_table = True; continue
    if in_table and not line.startswith("|"): break
    cells = line.split("|")
    if not in_table or len(cells) < 4 or set(cells[1].strip()) <= set("-"): continue
    label = cells[1].strip().strip("`")
    names = set(re.findall(r"`([^`]+)`", cells[2]))
    documented[label] = (n, names)
    counts["tests"] += len(names)
if registered and not documented:
    problems.append("docs/development.md: no table with the header | label | tests | what |")
for label, (n, names) in sorted(documented.items()):
    have = registered.get(label, set())
    loc = where(dev, n)
    if not have: problems.append("%s: ctest has no test labelled %s" % (loc, label)); continue
    for t in sorted(names - have): problems.append("%s: %s is not a test labelled %s in ctest" % (loc, t, label))
    for t in sorted(have - names): problems.append("%s: ctest's test %s (label %s) is not listed" % (loc, t, label))
if documented:
    for label in sorted(set(registered) - set(documented)):
        problems.append("docs/development.md: the label table has no row for %s (tests: %s)"
                        % (label, " ".join(sorted(registered[label]))))

for p in problems: print("PROBLEM " + p)
print("CHECKED " + " ".join("%s=%d" % kv for kv in counts.items()))
EOF

grep -q '^CHECKED ' "$WORK/report.txt" || { fail "the checker did not finish:"; sed 's/^/    /' "$WORK/report.txt" >&2; }
if grep -q '^PROBLEM ' "$WORK/report.txt"; then
  while IFS= read -r line; do fail "${line#PROBLEM }"; done < <(grep '^PROBLEM ' "$WORK/report.txt")
fi
# A checker that finds nothing to check would pass any docs: each kind must have been exercised.
checked=$(grep '^CHECKED ' "$WORK/report.txt" | sed 's/^CHECKED //')
for kind in options keys paths links script_options tests cli_options config_comments defaults owners model_types series; do
  n=$(echo "$checked" | tr ' ' '\n' | sed -n "s/^$kind=//p")
  if [ "${n:-0}" -gt 0 ]; then pass "$n $kind named in the docs checked"; else fail "no $kind found in the docs: the extraction is broken"; fi
done
finish
