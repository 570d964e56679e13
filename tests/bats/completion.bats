#!/usr/bin/env bats
# Shell completion (contrib/completion/): bash's is driven directly (COMP_WORDS,
# COMP_CWORD, the function, COMPREPLY); zsh's through a real interactive zsh
# on a pseudo-terminal (zpty), which is typed a line and a TAB. Commands and
# options are compared with the help, so the completion cannot drift from it;
# ids, names and queues come from a real daemon.

load helpers

COMPLETION_DIR="$BATS_TEST_DIRNAME/../../contrib/completion"
# How long the completion waits for the daemon's lists (valgrind is slow).
export WAITER_COMPLETION_TIMEOUT=$((2 * WAITER_TEST_SLOW))

setup() {
	TESTDIR=$(mktemp -d "${BATS_TMPDIR:-/tmp}/waiter-test.XXXXXX")
	export TESTDIR
	write_zsh_capture
}

teardown() { daemon_teardown; }

# bash_complete WORD...: what bash's completion offers for the command line
# WORD... (the last word is the one being completed), one a line, sorted.
bash_complete() {
	(
		set +e
		# shellcheck source=/dev/null
		source "$COMPLETION_DIR/waiter.bash"
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		case $1 in
		*waiterd) _waiterd ;;
		*) _waiter ;;
		esac
		[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
	) | sort
}

# The capture script for zsh: zsh -f capture.zsh FPATHDIR LINE... prints
# "== LINE" and then each match zsh offers at the end of LINE. It types
# each LINE and a TAB into an interactive zsh on a pseudo-terminal;
# compadd is wrapped to print each match, a hook prints a marker when the
# completion is done, and the reader waits for that marker, never for a
# guessed time. Nothing is inserted or listed; Ctrl-U clears the line.
write_zsh_capture() {
	cat >"$TESTDIR/capture-setup.zsh" <<'EOF'
PROMPT= RPROMPT= PS2=
fpath=($FPATHDIR $fpath)
autoload -Uz compinit && compinit -u -D
_capture_end() { compstate[list]=''; compstate[insert]=''; print -r -- '<<END>>' }
_capture_complete() { comppostfuncs=(_capture_end); zle complete-word }
zle -N _capture_complete
bindkey '^I' _capture_complete
bindkey '^U' kill-whole-line
compadd() {
	# Calls that only fill arrays (-O, -A, -D) are the system's own.
	if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
		builtin compadd "$@"
		return
	fi
	local -a __hits
	builtin compadd -A __hits "$@"
	(( $#__hits )) || return 1
	print -rl -- ${__hits/#/<<HIT>>}
	builtin compadd "$@"
}
print ready-$((1 + 1))
EOF
	cat >"$TESTDIR/capture.zsh" <<'EOF'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "FPATHDIR=${(q)1}; source ${(q)${0:A:h}}/capture-setup.zsh"
zpty -r z out '*ready-2*' || exit 3
shift
for line; do
	zpty -w -n z "$line"$'\t'
	zpty -r z out '*<<END>>*' || exit 4
	print -r -- "== $line"
	print -r -- "${out//$'\r'/}" | sed -n 's/^.*<<HIT>>//p'
	zpty -w -n z $'\x15'
done
zpty -d z
EOF
}

# zsh_complete LINE...: for each LINE, "== LINE" and then the matches zsh
# offers at its end, sorted.
zsh_complete() {
	command -v zsh >/dev/null || { echo "zsh is not installed: .ci/deps installs it" >&2; return 1; }
	timeout $((60 * WAITER_TEST_SLOW)) zsh -f "$TESTDIR/capture.zsh" \
		"$(cd "$COMPLETION_DIR" && pwd)" "$@" >"$TESTDIR/zsh.out" || return 1
	awk '/^== / { if (n) close(cmd); print; cmd = "sort"; n = 1; next } { print | cmd }' \
		"$TESTDIR/zsh.out"
}

# The options a help defines, one a line, sorted: every long option of its
# usage lines, and the option each entry (an indented line that begins with
# an option) describes; short ones as "-X," too with --short.
help_options() {
	local short=0
	[ "$1" = --short ] && { short=1; shift; }
	"$@" | awk -v short=$short '
		/^(usage: )?waiter / {
			s = $0
			while (match(s, /--[a-z][a-z0-9-]*/)) {
				print substr(s, RSTART, RLENGTH)
				s = substr(s, RSTART + RLENGTH)
			}
			next
		}
		/^[ \t]+(-[A-Za-z], )?--[a-z]/ {
			if (short && match($0, /^[ \t]+-[A-Za-z],/))
				print substr($0, RSTART + RLENGTH - 3, 2)
			match($0, /--[a-z][a-z0-9-]*/)
			print substr($0, RSTART, RLENGTH)
		}' | sort -u
}

# The commands `waiter --help` lists, and help.
help_commands() {
	{ "$WAITER" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p'; echo help; } | sort
}

@test "bash: commands, and global options" {
	run bash_complete "$WAITER" wa
	assert_success
	assert_output "$(printf '%s\n' wait watch watches)"
	run bash_complete "$WAITER" --json ''
	assert_output "$(help_commands)"
	run bash_complete "$WAITER" --
	assert_output "$(printf '%s\n' --help --json --no-autostart --socket --version)"
}

@test "bash: the commands are those of waiter --help" {
	run bash_complete "$WAITER" ''
	assert_success
	assert_output "$(help_commands)"
}

@test "bash: each command's options are those of its help" {
	local c kind
	for c in $("$WAITER" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p'); do
		if [ "$c" = watch ]; then
			got=$(for kind in path pid tcp unix; do
				bash_complete "$WAITER" watch "$kind" --; done | sort -u)
		else
			got=$(bash_complete "$WAITER" "$c" --)
		fi
		got=$(echo "$got" | grep -vx -e --help -e -- || true)
		want=$(help_options "$WAITER" help "$c")
		[ "$got" = "$want" ] || {
			echo "waiter $c: the completion offers"; echo "$got"
			echo "and the help has"; echo "$want"
			return 1
		}
	done
}

@test "bash: waiterd's options are those of waiterd --help" {
	run bash_complete "$WAITERD" -
	assert_success
	assert_output "$(help_options --short "$WAITERD" --help)"
}

@test "bash: values of options, and paths" {
	mkdir "$TESTDIR/dir.d"
	touch "$TESTDIR/file.f"
	run bash_complete "$WAITER" tasks --state f
	assert_output failed
	run bash_complete "$WAITER" events --kind task_
	assert_output "$(printf '%s\n' task_done task_output task_started)"
	run bash_complete "$WAITER" kill 3 --signal K
	assert_output KILL
	run bash_complete "$WAITER" watch path --on created,mod
	assert_output created,modified
	run bash_complete "$WAITER" watch ''
	assert_output "$(printf '%s\n' path pid tcp unix)"
	run bash_complete "$WAITER" watch path "$TESTDIR/"
	assert_output "$(printf '%s\n' "$TESTDIR/capture-setup.zsh" "$TESTDIR/capture.zsh" \
		"$TESTDIR/dir.d" "$TESTDIR/file.f")"
	run bash_complete "$WAITER" submit --cwd "$TESTDIR/"
	assert_output "$TESTDIR/dir.d"
	run bash_complete "$WAITERD" --state-sync ''
	assert_output "$(printf '%s\n' full normal)"
	run bash_complete "$WAITERD" --max-frame ''
	assert_output ""
}

@test "bash: after submit's options, a command, then its arguments" {
	touch "$TESTDIR/file.f"
	run bash_complete "$WAITER" submit --queue q --timeout 5s -- ech
	assert_line echo
	run bash_complete "$WAITER" run ech
	assert_line echo
	run bash_complete "$WAITER" submit -- ls "$TESTDIR/fi"
	assert_output "$TESTDIR/file.f"
	run bash_complete "$WAITER" submit ls -l "$TESTDIR/fi"
	assert_output "$TESTDIR/file.f"
}

@test "bash: ids and names from the daemon, queues for --queue" {
	start_daemon
	"$WAITER" submit --name build -- sleep 60 >/dev/null     # 1
	"$WAITER" after 1h --name nightly >/dev/null              # 2
	"$WAITER" watch path "$TESTDIR" >/dev/null                # 3
	"$WAITER" queue set gpu --parallel 1
	run bash_complete "$WAITER" wait ''
	assert_success
	assert_output "$(printf '%s\n' 1 2 3 build nightly)"
	run bash_complete "$WAITER" cancel 1 n
	assert_output nightly
	run bash_complete "$WAITER" logs ''
	assert_output "$(printf '%s\n' 1 build)"
	run bash_complete "$WAITER" submit --after b
	assert_output build
	run bash_complete "$WAITER" events --id ''
	assert_output "$(printf '%s\n' 1 2 3 build nightly)"
	run bash_complete "$WAITER" run --queue ''
	assert_output "$(printf '%s\n' default gpu)"
	run bash_complete "$WAITER" queue set g
	assert_output gpu
}

@test "bash: the socket of -S is asked, and no daemon is ever started" {
	start_daemon
	"$WAITER" after 1h --name nightly >/dev/null
	sock=$WAITER_SOCKET
	unset WAITER_SOCKET
	export XDG_RUNTIME_DIR="$TESTDIR/run"
	mkdir -m 0700 "$XDG_RUNTIME_DIR"
	run bash_complete "$WAITER" -S "$sock" wait ''
	assert_output "$(printf '%s\n' 1 nightly)"
	# At the default socket nothing runs: nothing is offered, none started.
	run bash_complete "$WAITER" wait ''
	assert_success
	assert_output ""
	[ ! -e "$XDG_RUNTIME_DIR/waiter" ]
}

@test "zsh: the file parses" {
	command -v zsh >/dev/null || { echo "zsh is not installed: .ci/deps installs it" >&2; return 1; }
	zsh -n "$COMPLETION_DIR/_waiter"
}

@test "zsh: commands, options, values" {
	run zsh_complete "waiter wa" "waiter --" "waiter watch " \
		"waiter tasks --state f" "waiter events --kind task_" \
		"waiter watch path --on created," "waiterd --state-sync "
	assert_success
	assert_output "$(printf '%s\n' '== waiter wa' wait watch watches \
		'== waiter --' --help --json --no-autostart --socket --version \
		'== waiter watch ' path pid tcp unix \
		'== waiter tasks --state f' failed \
		'== waiter events --kind task_' task_done task_output task_started \
		'== waiter watch path --on created,' attributes deleted modified moved \
		'== waiterd --state-sync ' full normal)"
}

@test "zsh: the commands and each command's options are those of the help" {
	local c lines=("waiter ")
	for c in $("$WAITER" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p'); do
		case $c in
		watch) lines+=("waiter watch path --" "waiter watch pid --" \
			"waiter watch tcp --" "waiter watch unix --") ;;
		*) lines+=("waiter $c --") ;;
		esac
	done
	lines+=("waiterd -")
	zsh_complete "${lines[@]}" >"$TESTDIR/got"
	# One block per command: its matches without --help.
	block() { awk -v h="== $1" '$0 == h { on = 1; next } /^== / { on = 0 } on' \
		"$TESTDIR/got" | grep -vx -e --help || true; }
	[ "$(block "waiter ")" = "$(help_commands)" ]
	for c in $("$WAITER" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p'); do
		if [ "$c" = watch ]; then
			got=$(for k in path pid tcp unix; do block "waiter watch $k --"; done | sort -u)
		else
			got=$(block "waiter $c --")
		fi
		want=$(help_options "$WAITER" help "$c")
		[ "$got" = "$want" ] || {
			echo "waiter $c: zsh offers"; echo "$got"; echo "and the help has"; echo "$want"
			return 1
		}
	done
	got=$(block "waiterd -" | sort)
	want=$(help_options --short "$WAITERD" --help | grep -vx -e --help)
	[ "$got" = "$want" ] || { echo "waiterd: zsh offers"; echo "$got"; return 1; }
}

@test "zsh: ids and names from the daemon, queues, and no daemon started" {
	start_daemon
	"$WAITER" submit --name build -- sleep 60 >/dev/null     # 1
	"$WAITER" after 1h --name nightly >/dev/null              # 2
	"$WAITER" queue set gpu --parallel 1
	sock=$WAITER_SOCKET
	run zsh_complete "$WAITER wait " "$WAITER logs " "$WAITER submit --queue " \
		"$WAITER -S $sock cancel "
	assert_success
	assert_output "$(printf '%s\n' "== $WAITER wait " 1 2 build nightly \
		"== $WAITER logs " 1 build \
		"== $WAITER submit --queue " default gpu \
		"== $WAITER -S $sock cancel " 1 2 build nightly)"
	unset WAITER_SOCKET
	export XDG_RUNTIME_DIR="$TESTDIR/run"
	mkdir -m 0700 "$XDG_RUNTIME_DIR"
	run zsh_complete "$WAITER wait "
	assert_success
	assert_output "== $WAITER wait "
	[ ! -e "$XDG_RUNTIME_DIR/waiter" ]
}
