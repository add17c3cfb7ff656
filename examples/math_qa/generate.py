"""Generate the math_qa example task: seeded arithmetic word problems split into train, dev and
test JSONL files, plus the task sidecar; also refreshes the simulated LM's bundled copy.

Run from anywhere: ``python examples/math_qa/generate.py`` (``--check`` only verifies that the
committed files match what the generator produces). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

SEED = 20261125
SPLITS = (("train", 300), ("dev", 100), ("test", 200))
DIFFICULTY_BY_STEPS = {2: 0.2, 3: 0.5, 4: 0.8}
TASK = {
    "name": "math_qa",
    "description": "Arithmetic word problems with 2-4 steps and integer answers.",
    "inputs": ["question"],
    "outputs": ["answer"],
    "hints": ["step by step", "double-check", "arithmetic", "show your work"],
}

HERE = Path(__file__).resolve().parent
PACKAGE_DATA = HERE.parents[1] / "libs" / "dspex_simlm" / "src" / "dspex_simlm" / "data"

NAMES = [
    ("Ava", "she"),
    ("Ben", "he"),
    ("Chloe", "she"),
    ("Diego", "he"),
    ("Emma", "she"),
    ("Farid", "he"),
    ("Grace", "she"),
    ("Hiro", "he"),
    ("Isla", "she"),
    ("Jonas", "he"),
    ("Kira", "she"),
    ("Liam", "he"),
    ("Maya", "she"),
    ("Noah", "he"),
    ("Olga", "she"),
    ("Pavel", "he"),
    ("Quinn", "she"),
    ("Ravi", "he"),
    ("Sofia", "she"),
    ("Tariq", "he"),
]
ITEMS = ["marbles", "stickers", "apples", "pencils", "stamps", "cookies", "shells", "cards"]
GOODS = [
    ("notebook", "notebooks"),
    ("pen", "pens"),
    ("mug", "mugs"),
    ("book", "books"),
    ("ticket", "tickets"),
    ("sandwich", "sandwiches"),
    ("plant", "plants"),
]
MACHINES = [
    ("printer", "pages"),
    ("bakery oven", "loaves"),
    ("loom", "scarves"),
    ("factory line", "bottles"),
    ("robot", "parts"),
]

Problem = tuple[str, int, int]  # question, answer, steps


def _inventory(rng: random.Random, steps: int) -> Problem:
    """A running count changed by ``steps`` operations (add, remove, multiply, divide)."""
    name, pron = rng.choice(NAMES)
    friend, _ = rng.choice([n for n in NAMES if n[0] != name])
    item = rng.choice(ITEMS)
    count = rng.randint(5, 40)
    sentences = [f"{name} has {count} {item}."]
    for _ in range(steps):
        op = rng.choice(["add", "sub", "mul", "div"])
        if op == "div":
            divisors = [k for k in (2, 3, 4, 5) if count % k == 0 and count // k >= 2]
            op = "div" if divisors else "add"
        if op == "add":
            n = rng.randint(2, 30)
            count += n
            sentences.append(
                rng.choice(
                    [
                        f"{pron.capitalize()} buys {n} more.",
                        f"{friend} gives {name} {n} more.",
                        f"{pron.capitalize()} finds {n} more.",
                    ]
                )
            )
        elif op == "sub":
            n = rng.randint(1, max(1, count - 2))
            count -= n
            sentences.append(
                rng.choice(
                    [
                        f"{pron.capitalize()} gives {n} to {friend}.",
                        f"{pron.capitalize()} loses {n} of them.",
                    ]
                )
            )
        elif op == "mul":
            k = rng.choice([2, 3])
            count *= k
            word = {2: "doubles", 3: "triples"}[k]
            sentences.append(f"Then {name}'s collection {word}.")
        else:
            k = rng.choice(divisors)
            count //= k
            sentences.append(
                f"{pron.capitalize()} splits them equally into {k} boxes and keeps one box."
            )
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences), count, steps


def _shopping(rng: random.Random, steps: int) -> Problem:
    """Prices times quantities, sometimes with change from a bill."""
    name, pron = rng.choice(NAMES)
    (g1, g1s), (g2, g2s) = rng.sample(GOODS, 2)
    q1, p1 = rng.randint(2, 9), rng.randint(2, 15)
    extra = rng.randint(1, 20)
    if steps == 2:
        total = q1 * p1 + extra
        text = (
            f"{name} buys {q1} {g1s} at ${p1} each and one {g2} for ${extra}. "
            f"How many dollars does {name} spend in total?"
        )
        return text, total, steps
    if steps == 3:
        total = q1 * p1 + extra
        bill = rng.choice([b for b in (50, 100, 200) if b > total])
        text = (
            f"{name} buys {q1} {g1s} at ${p1} each and one {g2} for ${extra}. "
            f"{pron.capitalize()} pays with a ${bill} bill. How many dollars of change "
            f"does {pron} get?"
        )
        return text, bill - total, steps
    q2, p2 = rng.randint(2, 9), rng.randint(2, 15)
    total = q1 * p1 + q2 * p2
    bill = rng.choice([b for b in (100, 200, 500) if b > total])
    text = (
        f"A {g1} costs ${p1} and a {g2} costs ${p2}. {name} buys {q1} {g1s} and {q2} "
        f"{g2s} and pays with a ${bill} bill. How many dollars of change does {pron} get?"
    )
    return text, bill - total, steps


def _production(rng: random.Random, steps: int) -> Problem:
    """A rate times hours, then defects removed and boxes packed."""
    machine, things = rng.choice(MACHINES)
    rate, h1, h2 = rng.randint(3, 25), rng.randint(2, 8), rng.randint(2, 8)
    made = rate * (h1 + h2)
    text = (
        f"A {machine} makes {rate} {things} per hour. It runs for {h1} hours on Monday "
        f"and {h2} hours on Tuesday."
    )
    if steps == 2:
        return f"{text} How many {things} does it make in total?", made, steps
    box = rng.choice([2, 3, 4, 5]) if steps == 4 else 1
    # made >= 12, so some defect count in 1..7 always leaves a multiple of box (box <= 5).
    defective = rng.choice([d for d in range(1, min(made - box, 20) + 1) if (made - d) % box == 0])
    good = made - defective
    text += f" {defective} of the {things} are defective and thrown away."
    if steps == 3:
        return f"{text} How many good {things} are left?", good, steps
    text += f" The good {things} are packed {box} to a box."
    return f"{text} How many boxes are filled?", good // box, steps


FAMILIES: list[Callable[[random.Random, int], Problem]] = [_inventory, _shopping, _production]


def generate_rows(seed: int = SEED) -> dict[str, list[dict[str, object]]]:
    """All splits, deterministic for a seed; questions are unique across splits."""
    rng = random.Random(seed)
    total = sum(size for _, size in SPLITS)
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    while len(rows) < total:
        steps = rng.choice([2, 3, 4])
        question, answer, steps = rng.choice(FAMILIES)(rng, steps)
        if question in seen or answer <= 0:
            continue
        seen.add(question)
        rows.append(
            {"question": question, "answer": answer, "difficulty": DIFFICULTY_BY_STEPS[steps]}
        )
    splits: dict[str, list[dict[str, object]]] = {}
    start = 0
    for split, size in SPLITS:
        splits[split] = rows[start : start + size]
        start += size
    return splits


def rendered_files() -> dict[Path, str]:
    """Every file this script owns, with its exact content."""
    splits = generate_rows()

    def jsonl(rows: list[dict[str, object]]) -> str:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    task = json.dumps(TASK, indent=2) + "\n"
    files = {HERE / f"{split}.jsonl": jsonl(rows) for split, rows in splits.items()}
    files[HERE / "task.json"] = task
    # The simulated LM ships all rows as its default knowledge (train, dev, test in order).
    files[PACKAGE_DATA / "math_qa.jsonl"] = "".join(jsonl(splits[s]) for s, _ in SPLITS)
    files[PACKAGE_DATA / "math_qa.task.json"] = task
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not write")
    args = parser.parse_args(argv)
    stale = []
    for path, content in rendered_files().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + str(path.relative_to(HERE.parents[1])))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
