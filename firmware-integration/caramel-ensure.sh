# shellcheck shell=sh
# caramel-ensure.sh: make sure this device holds a Caramel certificate, from a firmware
# tool written in POSIX sh. Source it, then call the function:
#
#   . /usr/share/caramel-embedded/caramel-ensure.sh
#   caramel_ensure [caramel-embedded arguments...]
#   case $? in
#   0) echo "certificate in place" ;;
#   69) echo "waiting for signature: try again later" ;;
#   *) echo "no certificate: error" ;;
#   esac
#
# caramel_ensure runs caramel-embedded once with the arguments given and the CARAMEL_*
# variables of the environment (load /etc/default/caramel-embedded first with
# `set -a; . /etc/default/caramel-embedded; set +a` if the tool does not have them), and
# returns:
#   0    a certificate is installed and current;
#   69   the request waits for a signature (one line "waiting for signature" on stderr);
#   1    another run kept the lock on the file through every retry;
#   any other status: an error, passed on as it came (127 from the client, 255 from a
#        one-file launcher that could not unpack itself, 126/127 from the shell when the
#        binary cannot be run), with one line on stderr naming it.
# It never loops beyond the lock retries: the caller decides when to ask again.
#
# Status 1 means another run holds the lock on the combined file (the timer's or cron's
# run, another tool): caramel_ensure sleeps a short random time and tries again, up to
# CARAMEL_ENSURE_TRIES runs in all. The random sleep keeps two waiting tools from retrying
# in step.
#
# A new certificate: with CARAMEL_ON_INSTALL set, caramel_ensure runs the client with
# --status and, only when that line says status=installed (a new certificate written; not
# when the one held is still current), runs CARAMEL_ON_INSTALL as shell code in a
# subshell, with the line in CARAMEL_STATUS_LINE (eval "$CARAMEL_STATUS_LINE" sets
# $status, $not_after, ...). For example CARAMEL_ON_INSTALL='/etc/init.d/nginx reload'.
# A hook that fails is said on stderr; caramel_ensure still returns 0 (the certificate is
# in place). The status line itself is not printed.
#
# Settings (environment variables; all optional):
#   CARAMEL_EMBEDDED          the binary (default: caramel-embedded from PATH)
#   CARAMEL_ON_INSTALL        shell code to run after a new certificate was installed
#   CARAMEL_ENSURE_TRIES      runs in all while the lock is held (default 4)
#   CARAMEL_ENSURE_MAX_SLEEP  longest sleep between two of them, in seconds (default 5)
#
# Names it defines: caramel_ensure, caramel_ensure_random, and variables starting with
# _caramel_ensure_ (POSIX sh has no local variables).

# Print a random whole number from 1 to $1 (at least 1).
caramel_ensure_random() {
	_caramel_ensure_max=$1
	case $_caramel_ensure_max in
	'' | *[!0-9]*) _caramel_ensure_max=1 ;;
	esac
	[ "$_caramel_ensure_max" -ge 1 ] || _caramel_ensure_max=1
	# Two random bytes from the kernel; the shell's PID if od or /dev/urandom is missing.
	_caramel_ensure_seed=$(od -An -N2 -tu2 /dev/urandom 2>/dev/null | tr -d ' \n')
	case $_caramel_ensure_seed in
	'' | *[!0-9]*) _caramel_ensure_seed=$$ ;;
	esac
	echo $((_caramel_ensure_seed % _caramel_ensure_max + 1))
}

caramel_ensure() {
	_caramel_ensure_tries=${CARAMEL_ENSURE_TRIES:-4}
	case $_caramel_ensure_tries in
	'' | *[!0-9]*) _caramel_ensure_tries=4 ;;
	esac
	_caramel_ensure_run=1
	while :; do
		if [ -n "${CARAMEL_ON_INSTALL:-}" ]; then
			_caramel_ensure_line=$("${CARAMEL_EMBEDDED:-caramel-embedded}" --status "$@")
			_caramel_ensure_status=$?
		else
			_caramel_ensure_line=
			"${CARAMEL_EMBEDDED:-caramel-embedded}" "$@"
			_caramel_ensure_status=$?
		fi
		case $_caramel_ensure_status in
		0)
			case " $_caramel_ensure_line " in
			*" status=installed "*)
				(
					CARAMEL_STATUS_LINE=$_caramel_ensure_line
					export CARAMEL_STATUS_LINE
					eval "$CARAMEL_ON_INSTALL"
				)
				_caramel_ensure_hook=$?
				if [ "$_caramel_ensure_hook" -ne 0 ]; then
					echo "caramel-ensure: CARAMEL_ON_INSTALL failed with status $_caramel_ensure_hook" >&2
				fi
				;;
			esac
			return 0
			;;
		69)
			echo "caramel-ensure: waiting for signature" >&2
			return 69
			;;
		1)
			if [ "$_caramel_ensure_run" -ge "$_caramel_ensure_tries" ]; then
				echo "caramel-ensure: the certificate file stayed locked by another run ($_caramel_ensure_run tries)" >&2
				return 1
			fi
			_caramel_ensure_run=$((_caramel_ensure_run + 1))
			sleep "$(caramel_ensure_random "${CARAMEL_ENSURE_MAX_SLEEP:-5}")"
			;;
		*)
			echo "caramel-ensure: error: caramel-embedded exited with status $_caramel_ensure_status" >&2
			return "$_caramel_ensure_status"
			;;
		esac
	done
}
