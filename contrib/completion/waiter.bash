# bash completion for waiter(1) and waiterd(8)                 -*- shell-script -*-
#
# Completes commands, each command's options, the ids and names of objects
# for the commands that take an ID (asked of the running daemon, which is
# never started for it: --no-autostart), queue names for --queue, signals,
# states and event kinds, and files where a command takes a path.
# `make install` puts it in bash-completion's completions directory as
# `waiter`, with `waiterd` beside it; source it to use it from elsewhere.
# Keep the option lists in step with `waiter help COMMAND` and `waiterd
# --help`: tests/bats/completion.bats compares them.

_waiter_commands='ping stats version shutdown after every at timers submit run
tasks show logs kill queue queues watch watches cancel wait events help'

# Each command's options, as its help lists them.
_waiter_options() {
	case $1 in
	after | at) echo --name --wait ;;
	every) echo --count --name --follow ;;
	timers | watches) echo --all ;;
	stats) echo --prometheus ;;
	submit) echo --queue --name --after --timeout --cwd --env --no-env --shell \
		--output-limit --stdin --wait ;;
	run) echo --queue --name --after --timeout --cwd --env --no-env --shell \
		--output-limit --stdin ;;
	tasks) echo --state --queue ;;
	logs) echo --follow --stderr ;;
	kill) echo --signal ;;
	queue) echo --parallel ;;
	wait) echo --timeout ;;
	events) echo --follow --since --kind --id ;;
	watch-path) echo --recursive --on --include --exclude --settle --once --create \
		--name --wait --follow ;;
	watch-pid) echo --name --wait --follow ;;
	watch-tcp | watch-unix) echo --timeout --name --wait --follow ;;
	esac
}

# Options that take a value (the next word), for any command.
_waiter_takes_value() {
	case $1 in
	-S | --socket | --name | --count | --queue | --after | --timeout | --cwd | --env | \
		--shell | -c | --output-limit | --stdin | --state | --signal | -s | --parallel | \
		--since | --kind | --id | --on | --include | --exclude | --settle) return 0 ;;
	esac
	return 1
}

# Run the waiter of this command line, at the socket it names, without
# starting a daemon; quiet, and bounded in time should the daemon hang
# ($WAITER_COMPLETION_TIMEOUT seconds, default 2).
_waiter_call() {
	local bin=${COMP_WORDS[0]}
	[[ $bin == */* && -x $bin ]] || bin=waiter
	timeout "${WAITER_COMPLETION_TIMEOUT:-2}" "$bin" ${_waiter_socket:+-S "$_waiter_socket"} --no-autostart "$@" \
		2>/dev/null </dev/null
}

# Ids and names of the objects the daemon lists with each of "$@" (tasks,
# timers, watches), one a line. The names come from --json: one may hold
# spaces.
_waiter_objects() {
	local list
	for list in "$@"; do
		_waiter_call --json "$list" |
			sed -n 's/^{"id":\([0-9]*\),"kind":"[a-z]*","name":"\(\([^"\\]\|\\.\)*\)".*/\1\n\2/p'
	done | sed '/^$/d'
}

# The queues' names, one a line.
_waiter_queues() {
	_waiter_call queues | awk 'NR > 1 { print $1 }'
}

# COMPREPLY from the lines on stdin that begin with $cur, quoted for the shell.
_waiter_reply_lines() {
	local line
	COMPREPLY=()
	while IFS= read -r line; do
		[[ $line == "$cur"* ]] && COMPREPLY+=("$(printf '%q' "$line")")
	done
}

_waiter_words() {
	mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}

_waiter_files() {
	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen "${1:--f}" -- "$cur")
}

# The value of option $prev.
_waiter_value() {
	case $prev in
	-S | --socket | --stdin) _waiter_files -f ;;
	--cwd) _waiter_files -d ;;
	--queue) _waiter_reply_lines < <(_waiter_queues) ;;
	--after) _waiter_reply_lines < <(_waiter_objects tasks) ;;
	--id) _waiter_reply_lines < <(_waiter_objects tasks timers watches) ;;
	--state) _waiter_words 'waiting queued running succeeded failed timed_out
		cancelled dependency_failed lost' ;;
	--signal | -s) _waiter_words 'TERM KILL INT HUP QUIT USR1 USR2 CONT STOP' ;;
	--kind) _waiter_words 'timer_fired cancelled shutdown task_started task_output
		task_done path_changed watch_ended watch_overflow process_exited
		endpoint_ready watch_timed_out' ;;
	--on)
		# A comma-separated list: complete its last element.
		local head=${cur%"${cur##*,}"} k
		COMPREPLY=()
		for k in created modified deleted moved attributes; do
			[[ $head$k == "$cur"* ]] && COMPREPLY+=("$head$k")
		done
		compopt -o nospace 2>/dev/null ;;
	*) COMPREPLY=() ;;
	esac
}

# The words of the command from index $1 on: what the positional argument
# at COMP_CWORD is (its index among them, from 0), or -1 when the
# command's own COMMAND (submit, run) has begun (then $_waiter_tail is the
# index of its first word).
_waiter_position() {
	local i=$1 n=0
	_waiter_tail=
	for ((; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--) _waiter_tail=$((i + 1)); return ;;
		-*) _waiter_takes_value "${COMP_WORDS[i]}" && i=$((i + 1)) ;;
		*)
			if [[ $_waiter_cmd == submit || $_waiter_cmd == run ]]; then
				_waiter_tail=$i
				return
			fi
			n=$((n + 1)) ;;
		esac
	done
	_waiter_pos=$n
}

_waiter() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev= i _waiter_socket= _waiter_cmd= start
	local _waiter_pos=0 _waiter_tail= sub
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	# Global options, then the command.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-S | --socket)
			# bash splits --socket=PATH at the =.
			[[ ${COMP_WORDS[i + 1]} == = ]] && i=$((i + 1))
			_waiter_socket=${COMP_WORDS[i + 1]}
			i=$((i + 1)) ;;
		-*) ;;
		*) _waiter_cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	start=$((i + 1))
	if [[ -z $_waiter_cmd ]]; then
		case $prev in
		-S | --socket) _waiter_files -f; return ;;
		esac
		if [[ $cur == -* ]]; then
			_waiter_words '-S --socket --json --no-autostart -h --help --version'
		else
			_waiter_words "$_waiter_commands"
		fi
		return
	fi

	# The watch kinds: the word after watch.
	sub=$_waiter_cmd
	if [[ $_waiter_cmd == watch ]]; then
		if ((COMP_CWORD == start)); then
			_waiter_words 'path pid tcp unix'
			return
		fi
		sub=watch-${COMP_WORDS[start]}
		start=$((start + 1))
	fi

	_waiter_position "$start"
	if [[ -n $_waiter_tail ]]; then
		# The task's own command line: a command, then its arguments.
		if ((COMP_CWORD == _waiter_tail)); then
			mapfile -t COMPREPLY < <(compgen -c -- "$cur")
		else
			_waiter_files -f
		fi
		return
	fi
	if _waiter_takes_value "$prev" && [[ $prev != -S && $prev != --socket ]]; then
		_waiter_value
		return
	fi
	if [[ $cur == -* ]]; then
		_waiter_words "$(_waiter_options "$sub") --help"
		[[ $sub == submit || $sub == run ]] && [[ $cur == - || $cur == -- ]] &&
			COMPREPLY+=(--)
		return
	fi
	case $sub in
	help) ((_waiter_pos == 0)) && _waiter_words "$_waiter_commands" ;;
	show) ((_waiter_pos == 0)) && _waiter_reply_lines < <(_waiter_objects tasks timers watches) ;;
	logs | kill) ((_waiter_pos == 0)) && _waiter_reply_lines < <(_waiter_objects tasks) ;;
	cancel | wait) _waiter_reply_lines < <(_waiter_objects tasks timers watches) ;;
	queue)
		case $_waiter_pos in
		0) _waiter_words set ;;
		1) _waiter_reply_lines < <(_waiter_queues) ;;
		esac ;;
	submit | run) mapfile -t COMPREPLY < <(compgen -c -- "$cur") ;;
	watch-path | watch-unix) _waiter_files -f ;;
	watch-pid)
		((_waiter_pos == 0)) &&
			_waiter_words "$(cd /proc 2>/dev/null && compgen -G '[0-9]*' | sort -n)" ;;
	esac
	return 0
}

_waiterd() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()
	case $prev in
	-S | --socket | --log-file) _waiter_files -f; return ;;
	--metrics-listen) return ;;
	--state-dir) _waiter_files -d; return ;;
	--allow-uid) mapfile -t COMPREPLY < <(compgen -u -- "$cur"); return ;;
	--allow-group) mapfile -t COMPREPLY < <(compgen -g -- "$cur"); return ;;
	--state-sync) _waiter_words 'full normal'; return ;;
	--max-frame | --frame-timeout | --max-clients | --max-output | --retain-events | \
		--retain-bytes | --keep-finished | --keep-finished-for | --max-objects | \
		--max-objects-per-client | --slow-lap | --max-queued-tasks | \
		--max-tasks-per-user | --max-kept-output | --kill-grace | --max-watched-dirs) return ;;
	esac
	_waiter_words '-S --socket -f --foreground -d --daemonize --log-file --max-frame
		--frame-timeout --max-clients --max-output --retain-events --retain-bytes
		--keep-finished --keep-finished-for --max-objects --max-objects-per-client
		--slow-lap --allow-uid --allow-group --no-tasks --max-queued-tasks
		--max-tasks-per-user --max-kept-output --kill-grace --max-watched-dirs --state-dir --state-sync
		--no-state --metrics-listen --no-pidfd -v --verbose -V --version -h --help'
}

complete -F _waiter waiter
complete -F _waiterd waiterd
