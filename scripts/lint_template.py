#!/usr/bin/env python3
"""checkov, cfn-lint and `sam validate --lint` on template.yaml as each front door deploys it by
default; fails on any finding that .checkov.yaml does not skip, on a skip that no door needs, and
on any cfn-lint or sam message. CI runs it (.ci/run, "lint"):

    python3 scripts/lint_template.py [--checkov CHECKOV] [--cfn-lint CFN_LINT] [--sam SAM]

For each FrontDoor value it writes two copies of template.yaml into a temporary folder:
template-<door>.yaml, the template with that FrontDoor default (cfn-lint and sam lint it, and they
weigh every condition themselves), and template-<door>.rendered.json, the same with every
condition decided from the parameters' defaults: resources and outputs whose condition is false
left out, each Fn::If replaced by its chosen branch. checkov runs on the rendered copy, because it
reads an `!If` as "set" whatever its branches say: on the template itself, `AuthType: !If [...,
AWS_IAM, NONE]` passes CKV_AWS_258 with either default.

Needs cfn-lint's Python package (its decoder reads the template's short forms like !Ref); SAM is
optional (without it, sam validate is left out and the summary says so). `sam validate --lint`
needs a region: AWS_DEFAULT_REGION, else us-east-1.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TEMPLATE = os.path.join(ROOT, "template.yaml")
CONFIG = os.path.join(ROOT, ".checkov.yaml")
DOORS = ["RestApi", "HttpApi", "FunctionUrl"]
NO_VALUE = object()


def skip_list(path):
    """The ids under `skip-check:` in .checkov.yaml, each with the comment right above it."""
    skips, comment, inside = {}, [], False
    for line in open(path):
        stripped = line.strip()
        if re.match(r"^skip-check:\s*$", line):
            inside = True
        elif inside and stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
        elif inside and stripped.startswith("- "):
            check = stripped[2:].strip()
            if not comment:
                sys.exit(f"{path}: {check} is skipped without a comment above it saying why")
            skips[check] = " ".join(comment)
            comment = []
        elif inside and stripped and not line.startswith(" "):
            inside = False
    return skips


def with_default(text, name, value):
    """The template's text with parameter NAME's default set to VALUE."""
    pattern = rf"(\n  {name}:\n    Type: String\n    Default: )\S+"
    new, n = re.subn(pattern, lambda m: m.group(1) + value, text)
    if n != 1:
        sys.exit(f"template.yaml: parameter {name} (Type, then Default) not found")
    return new


def render(template):
    """TEMPLATE (decoded, long forms) with every condition decided from the parameters' defaults."""
    params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    conditions = template.get("Conditions", {})
    decided = {}

    def scalar(x):
        if isinstance(x, dict) and list(x) == ["Ref"] and x["Ref"] in params:
            return params[x["Ref"]]
        if isinstance(x, (str, int, float, bool)):
            return str(x).lower() if isinstance(x, bool) else str(x)
        raise ValueError(f"cannot decide a condition on {x!r}")

    def condition(name):
        if name not in decided:
            decided[name] = evaluate(conditions[name])
        return decided[name]

    def evaluate(c):
        (fn, args), = c.items()
        if fn == "Fn::Equals":
            return scalar(args[0]) == scalar(args[1])
        if fn == "Fn::And":
            return all(evaluate(a) for a in args)
        if fn == "Fn::Or":
            return any(evaluate(a) for a in args)
        if fn == "Fn::Not":
            return not evaluate(args[0])
        if fn == "Condition":
            return condition(args)
        raise ValueError(f"condition function {fn} not handled")

    def resolve(node):
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                name, yes, no = node["Fn::If"]
                return resolve(yes if condition(name) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            out = {}
            for k, v in node.items():
                v = resolve(v)
                if v is not NO_VALUE:
                    out[k] = v
            return out
        if isinstance(node, list):
            return [v for v in (resolve(x) for x in node) if v is not NO_VALUE]
        return node

    out = {}
    for section, body in template.items():
        if section in ("Resources", "Outputs"):
            kept = {}
            for name, item in body.items():
                if "Condition" in item and not condition(item["Condition"]):
                    continue
                item = {k: v for k, v in item.items() if k != "Condition"}
                kept[name] = resolve(item)
            out[section] = kept
        else:
            out[section] = body
    return out


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def checkov_results(checkov, path, cwd):
    # Run from the temporary folder, so that checkov does not read .checkov.yaml by itself: the
    # skip list is applied below, where a skip that no door needs shows.
    p = run([checkov, "-f", path, "--framework", "cloudformation", "--skip-download",
             "--output", "json"], cwd=cwd)
    try:
        report = json.loads(p.stdout)
    except json.JSONDecodeError:
        sys.exit(f"checkov did not answer in JSON (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "cloudformation")
    results = report.get("results", {})
    return results.get("passed_checks", []), results.get("failed_checks", [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkov", default=os.environ.get("CHECKOV", "checkov"))
    ap.add_argument("--cfn-lint", default=os.environ.get("CFN_LINT", "cfn-lint"))
    ap.add_argument("--sam", default=os.environ.get("SAM", shutil.which("sam") or ""))
    args = ap.parse_args()
    from cfnlint.decode import decode  # cfn-lint's own reader of the template's short forms

    skips = skip_list(CONFIG)
    text = open(TEMPLATE).read()
    needed = set()
    failures = []
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with tempfile.TemporaryDirectory() as work:
        for door in DOORS:
            copy = os.path.join(work, f"template-{door}.yaml")
            with open(copy, "w") as f:
                f.write(with_default(text, "FrontDoor", door))
            template, matches = decode(copy)
            if matches:
                sys.exit(f"{copy}: {[str(m) for m in matches]}")
            rendered = os.path.join(work, f"template-{door}.rendered.json")
            with open(rendered, "w") as f:
                json.dump(render(template), f, indent=1)

            passed, failed = checkov_results(args.checkov, rendered, work)
            skipped = [c for c in failed if c["check_id"] in skips]
            findings = [c for c in failed if c["check_id"] not in skips]
            needed.update(c["check_id"] for c in skipped)
            print(f"== FrontDoor={door}")
            print(f"checkov: {len(passed)} checks passed, {len(findings)} findings, "
                  f"{len(skipped)} skipped by .checkov.yaml")
            for c in passed:
                print(f"  pass  {c['check_id']:12} {c['resource']}")
            for c in skipped:
                print(f"  skip  {c['check_id']:12} {c['resource']}")
            for c in findings:
                print(f"  FAIL  {c['check_id']:12} {c['resource']}: {c['check_name']}")
                failures.append(f"FrontDoor={door}: checkov {c['check_id']} on {c['resource']}")

            lint = run([args.cfn_lint, copy])
            print("cfn-lint: " + ("clean" if lint.returncode == 0 else "FAILED"))
            if lint.returncode != 0:
                print(lint.stdout + lint.stderr)
                failures.append(f"FrontDoor={door}: cfn-lint")
            if args.sam:
                sam = run([args.sam, "validate", "--lint", "-t", copy], env=env, cwd=work)
                print("sam validate --lint: " + ("clean" if sam.returncode == 0 else "FAILED"))
                if sam.returncode != 0:
                    print(sam.stdout + sam.stderr)
                    failures.append(f"FrontDoor={door}: sam validate --lint")
            else:
                print("sam validate --lint: not run (no sam: --sam or SAM)")

    print("== skipped checks (.checkov.yaml)")
    for check, why in skips.items():
        print(f"  {check}: {why}")
        if check not in needed:
            failures.append(f".checkov.yaml skips {check}, which no front door fails: remove it")
    if failures:
        print("== template lint FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"== template lint: {len(DOORS)} front doors, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
