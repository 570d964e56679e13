#!/usr/bin/env bats
# The manuals (doc/waiter.1, doc/waiterd.8) against the help the programs
# print: every command, every option and every default of `waiter --help`,
# `waiter help COMMAND` and `waiterd --help` is in the manual, and the
# manual lists no option the help does not know. No daemon is needed.

load helpers

DOC="$BATS_TEST_DIRNAME/../../doc"

# mancheck WHAT MANUAL: compare MANUAL (mdoc source) with the help; print
# each difference on a line of its own and fail if there is one. WHAT:
# commands, global, per-command, waiterd, defaults-waiter, defaults-waiterd.
mancheck() {
	/usr/bin/python3 - "$1" "$2" "$WAITER" "$WAITERD" <<'EOF'
import re, subprocess, sys

what, manual, waiter, waiterd = sys.argv[1:5]
src = open(manual).read().split("\n")
LONG = r"--([a-z][a-z0-9-]*)"

def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

def section(name):
    """The lines of the manual's section .Sh NAME."""
    out, inside = [], False
    for line in src:
        if line.startswith(".Sh "):
            inside = line[4:].strip() == name
        elif inside:
            out.append(line)
    return out

def fl_long(text):
    """Long options the mdoc text gives with Fl (".Fl -json": --json)."""
    return {"--" + m for m in re.findall(r"\bFl -([a-z][a-z0-9-]*)", text)}

def fl_short(text):
    return {"-" + m for m in re.findall(r"\bFl ([A-Za-z])\b", text)}

def items(lines):
    """Each .It line with the text up to the next .It, .El or .Ss."""
    out, cur = [], None
    for line in lines:
        if line.startswith(".It "):
            cur = [line]
            out.append(cur)
        elif line.startswith((".El", ".Ss", ".Sh")):
            cur = None
        elif cur is not None:
            cur.append(line)
    return ["\n".join(i) for i in out]

def help_entries(text):
    """Option entries of a help text: (the option line, its whole text)."""
    out, cur = [], None
    for line in text.split("\n"):
        m = re.match(r"^(\s+)(-[A-Za-z], )?--[a-z]", line)
        if m:
            cur = [len(m.group(1)), line]
            out.append(cur)
        elif cur is not None and line.startswith(" " * (cur[0] + 1)) and line.strip():
            cur[1] += " " + line.strip()
        else:
            cur = None
    return [(e[1].split("\n")[0], e[1]) for e in out]

def help_opts(text):
    """Options a help defines: its usage lines and its option entries."""
    opts = set()
    for line in text.split("\n"):
        if re.match(r"^(usage: )?waiter ", line):
            opts |= {"--" + m for m in re.findall(LONG, line)}
        m = re.match(r"^\s+(?:-[A-Za-z], )?" + LONG, line)
        if m:
            opts.add("--" + m.group(1))
    return opts

def defaults(text):
    """(option, default) pairs: "(default 1048576)", "(1d)", "(default 1 MiB; ...)"."""
    out = []
    for head, entry in help_entries(text):
        opt = re.search(LONG, head).group(0)
        for d in re.findall(r"\(default:? ([^;)]+)[;)]", entry) + \
                re.findall(r"\(([0-9][0-9A-Za-z.]*)\)", entry):
            if d[0].isdigit():
                out.append((opt, d.strip()))
    return out

problems = []
usage = run(waiter, "--help")
commands = re.findall(r"^  ([a-z]+) ", usage.split("Commands:")[1].split("\n\n")[0], re.M)

def command_blocks():
    """The manual's COMMANDS section: command name -> its text."""
    blocks, cur = {}, None
    for line in section("COMMANDS"):
        m = re.match(r"^\.It (?:Xo )?Ic ([a-z]+)", line)
        if m:
            cur = m.group(1)
            blocks.setdefault(cur, [])
        elif line.startswith(".Ss"):
            cur = None
        if cur is not None:
            blocks[cur].append(line)
    return {k: "\n".join(v) for k, v in blocks.items()}

if what == "commands":
    man = set(command_blocks())
    for c in commands:
        if c not in man:
            problems.append("command %s: in waiter --help, not in the manual" % c)
    for c in sorted(man - set(commands)):
        problems.append("command %s: in the manual, not in waiter --help" % c)
elif what == "global":
    glob = usage.split("Global options:")[1].split("\n\n")[0]
    want = {"--" + m for m in re.findall(LONG, glob)} | \
        set(re.findall(r"^\s+(-[A-Za-z]),", glob, re.M))
    man = set()
    for it in items(section("OPTIONS")):
        first = it.split("\n")[0]
        man |= fl_long(first) | fl_short(first)
    for o in sorted(want - man):
        problems.append("global option %s: in waiter --help, not in the manual" % o)
    for o in sorted(man - want):
        problems.append("global option %s: in the manual, not in waiter --help" % o)
elif what == "per-command":
    blocks = command_blocks()
    for c in commands:
        text = run(waiter, "help", c)
        man = fl_long(blocks.get(c, ""))
        for o in sorted(help_opts(text) - man):
            problems.append("%s %s: in waiter help %s, not in the manual" % (c, o, c))
        for o in sorted(man - {"--" + m for m in re.findall(LONG, text)}):
            problems.append("%s %s: in the manual, not in waiter help %s" % (c, o, c))
elif what == "waiterd":
    text = run(waiterd, "--help")
    want = help_opts(text) | set(re.findall(r"^\s+(-[A-Za-z]),", text, re.M))
    man = set()
    for it in items(section("OPTIONS")):
        first = it.split("\n")[0]
        man |= fl_long(first) | fl_short(first)
    for o in sorted(want - man):
        problems.append("option %s: in waiterd --help, not in the manual" % o)
    for o in sorted(man - want):
        problems.append("option %s: in the manual, not in waiterd --help" % o)
elif what in ("defaults-waiter", "defaults-waiterd"):
    if what == "defaults-waiterd":
        helps = [run(waiterd, "--help")]
    else:
        helps = [usage] + [run(waiter, "help", c) for c in commands]
    its = items(src)
    for text in helps:
        for opt, d in defaults(text):
            mine = [it for it in its if re.search(r"\bFl -" + opt[2:] + r"\b(?!-)", it.split("\n")[0])]
            flat = [" ".join(it.split()) for it in mine]
            if not mine:
                problems.append("%s: no item in the manual (help default %s)" % (opt, d))
            elif not any(d in f for f in flat):
                problems.append("%s: the help's default %s is not in the manual" % (opt, d))
else:
    sys.exit("mancheck: what is %s?" % what)

for p in dict.fromkeys(problems):
    print(p)
sys.exit(1 if problems else 0)
EOF
}

@test "waiter.1 has every command of waiter --help, and no other" {
	run mancheck commands "$DOC/waiter.1"
	assert_success
	assert_output ""
}

@test "waiter.1 has the global options of waiter --help, and no other" {
	run mancheck global "$DOC/waiter.1"
	assert_success
	assert_output ""
}

@test "waiter.1 gives each command the options of its help, and no other" {
	run mancheck per-command "$DOC/waiter.1"
	assert_success
	assert_output ""
}

@test "waiterd.8 has every option of waiterd --help, and no other" {
	run mancheck waiterd "$DOC/waiterd.8"
	assert_success
	assert_output ""
}

@test "the manuals give the defaults the help gives" {
	run mancheck defaults-waiterd "$DOC/waiterd.8"
	assert_success
	assert_output ""
	run mancheck defaults-waiter "$DOC/waiter.1"
	assert_success
	assert_output ""
}

# The check itself: a manual that lost an option, a command or a default,
# or gained an option the help does not know, is caught.
@test "the check catches a manual that drifted" {
	dir=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-man.XXXXXX")
	grep -v '^\.It Fl -kill-grace' "$DOC/waiterd.8" >"$dir/lost.8"
	run mancheck waiterd "$dir/lost.8"
	assert_failure
	assert_output "option --kill-grace: in waiterd --help, not in the manual"

	sed 's/^\.It Fl -no-pidfd$/.It Fl -no-such-option/' "$DOC/waiterd.8" >"$dir/extra.8"
	run mancheck waiterd "$dir/extra.8"
	assert_failure
	assert_line "option --no-such-option: in the manual, not in waiterd --help"

	sed 's/(default 10000)\.$/(default 10001)./' "$DOC/waiterd.8" >"$dir/default.8"
	run mancheck defaults-waiterd "$dir/default.8"
	assert_failure
	assert_line "--max-clients: the help's default 10000 is not in the manual"

	sed 's/^\.It Ic queues$/.It Ic kueues/' "$DOC/waiter.1" >"$dir/cmd.1"
	run mancheck commands "$dir/cmd.1"
	assert_failure
	assert_line "command queues: in waiter --help, not in the manual"
	assert_line "command kueues: in the manual, not in waiter --help"

	grep -v '^\.Op Fl -stderr$' "$DOC/waiter.1" | grep -v '^\.It Fl -stderr$' >"$dir/opt.1"
	run mancheck per-command "$dir/opt.1"
	assert_failure
	assert_output "logs --stderr: in waiter help logs, not in the manual"
	rm -rf "$dir"
}
