"""Builds the demo model's chat corpus from text this machine's Debian packages ship.

Domains and sources (all installed with `apt-get install -y fortunes fortunes-zh wordnet-base`,
plus Python's own standard library that ships with the interpreter):
  prose        English sayings and quotations: /usr/share/games/fortunes/{fortunes,wisdom,literature,
               people,platitudes,humorists,love,work,science,education} (package `fortunes`,
               BSD fortune database; public domain / freely redistributable per its copyright file)
  definitions  WordNet 3.0 noun/verb/adjective glosses: /usr/share/wordnet/data.{noun,verb,adj}
               (package `wordnet-base`, WordNet 3.0 licence: free to use, copy and distribute)
  chinese      Chinese sayings and Tang/Song poems: /usr/share/games/fortunes/{chinese,tang300,song100}
               (package `fortunes-zh`, GPL-2+)
  code         Python functions from the standard library: /usr/lib/python3.11/**/*.py, tests excluded (PSF licence)
  arithmetic   generated: "What is a + b?" → "a + b = c." (also -, ×)
Each example is one ChatML turn, a user prompt typical of the domain and an assistant answer:
  <|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n
Writes .data/demo/{train,val}.jsonl.gz with {"domain", "text"}; seeded and reproducible.
Usage: python3 tools/demo-model/make_data.py [--out .data/demo] [--per-domain-chars 1500000]
"""
import argparse, ast, glob, gzip, json, os, random, re

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fortunes(paths, max_len=400):
    out = []
    for p in paths:
        if not os.path.exists(p):
            continue
        text = open(p, encoding="utf-8", errors="replace").read()
        for entry in text.split("\n%\n"):
            e = ANSI.sub("", entry).strip()
            if 20 <= len(e) <= max_len:
                out.append(e)
    return out


def prose():
    names = "fortunes wisdom literature people platitudes humorists love work science education".split()
    items = fortunes([f"/usr/share/games/fortunes/{n}" for n in names])
    prompts = ["Tell me a saying.", "Share a quote.", "Say something wise.", "Give me a thought for the day.", "Tell me something clever."]
    return [(random.choice(prompts), e) for e in items]


def definitions():
    out = []
    for pos in ("noun", "verb", "adj"):
        path = f"/usr/share/wordnet/data.{pos}"
        for line in open(path, encoding="utf-8", errors="replace"):
            if line.startswith(" ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            if len(fields) < 5:
                continue
            word = fields[4].replace("_", " ")
            gloss = gloss.strip().split(";")[0].strip()
            if not word.isascii() or not (8 <= len(gloss) <= 160) or any(c.isdigit() for c in word):
                continue
            prompt = random.choice([f"Define {word}.", f"What does {word} mean?", f"Definition of {word}?"])
            out.append((prompt, f"{word}: {gloss}."))
    return out


def chinese():
    items = fortunes([f"/usr/share/games/fortunes/{n}" for n in ("chinese", "tang300", "song100")], max_len=300)
    items = [i for i in items if sum(1 for c in i if "\u4e00" <= c <= "\u9fff") > 8]
    prompts = ["请念一首诗。", "说一句中文。", "给我一首唐诗。", "讲一段话。"]
    return [(random.choice(prompts), i) for i in items]


def code():
    out = []
    for path in sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)):
        if "/test" in path or "/idlelib/" in path or "site-packages" in path:
            continue
        try:
            src = open(path, encoding="utf-8").read()
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = src.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.end_lineno is not None:
                body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                body = "\n".join(l for l in body.splitlines() if l.strip())
                if 60 <= len(body) <= 500 and body.startswith("def "):
                    prompt = random.choice([f"Write a Python function {node.name}.", "Write Python code.", f"Show me {node.name} in Python."])
                    out.append((prompt, body))
    return out


def arithmetic(n=80000):
    out = []
    for _ in range(n):
        a, b = random.randint(0, 99), random.randint(0, 99)
        op = random.choice("+-*")
        c = a + b if op == "+" else a - b if op == "-" else a * b
        sym = {"+": "+", "-": "-", "*": "×"}[op]
        q = random.choice([f"What is {a} {sym} {b}?", f"Compute {a} {sym} {b}.", f"{a} {sym} {b} = ?"])
        out.append((q, f"{a} {sym} {b} = {c}."))
    return out


def turn(prompt, answer):
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".data/demo")
    ap.add_argument("--per-domain-chars", type=int, default=1_500_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    domains = {"prose": prose(), "definitions": definitions(), "chinese": chinese(), "code": code(), "arithmetic": arithmetic()}
    train, val = [], []
    for name, items in domains.items():
        random.shuffle(items)
        picked, chars = [], 0
        for p, ans in items:
            t = turn(p, ans)
            if chars + len(t) > a.per_domain_chars:
                break
            picked.append({"domain": name, "text": t})
            chars += len(t)
        k = max(50, len(picked) // 20)
        val += picked[:k]
        train += picked[k:]
        print(f"{name:12s} {len(items):7d} available, {len(picked):6d} used ({chars/1e3:.0f} kB), {k} held out")
    random.shuffle(train)
    for split, rows in (("train", train), ("val", val)):
        with gzip.open(os.path.join(a.out, f"{split}.jsonl.gz"), "wt", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"train {len(train)} examples, val {len(val)} → {a.out}")


if __name__ == "__main__":
    main()
