#!/bin/sh
# caramel-reload.sh: tell the services that use the Caramel certificate that a new one is
# installed, by reloading them (or restarting those that cannot reload).
#
# Run by caramel-embedded-reload.service, which caramel-embedded-reload.path starts when
# the combined file changes (PathChanged=: the client's atomic rename of a new file). The
# units are those named in RELOAD_UNITS (separated by commas) in /etc/default/caramel-embedded;
# each one that is running is reloaded, or restarted where it has no reload
# (systemctl try-reload-or-restart); one that is stopped stays stopped.
#
# A change of the file is not always a new certificate: the first run writes a key and
# its request, a rejection writes a new key, a corrected owner or mode changes the file's
# attributes. So the certificate in the file is compared with the one last announced
# (its SHA-256, kept in RELOAD_STATE), and the units are reloaded only when it differs.
#
# Settings (environment; the service reads /etc/default/caramel-embedded):
#   RELOAD_UNITS   units to reload or restart, separated by commas (empty: none)
#   CARAMEL_FILE   the combined file (default /var/lib/caramel/client.pem)
#   RELOAD_STATE   where the last certificate's SHA-256 is kept
#                  (default /run/caramel-embedded-reload/certificate.sha256)
#   SYSTEMCTL      the systemctl to call (default systemctl)
# Exit status: 0 done (or nothing to do); 1 a unit could not be reloaded (each one is
# still tried, and the certificate is announced again at the next change).

file=${CARAMEL_FILE:-/var/lib/caramel/client.pem}
state=${RELOAD_STATE:-/run/caramel-embedded-reload/certificate.sha256}
systemctl=${SYSTEMCTL:-systemctl}

certificate=$(sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p' "$file" 2>/dev/null)
if [ -z "$certificate" ]; then
	echo "caramel-reload: no certificate in $file yet: nothing to reload"
	exit 0
fi
sum=$(printf '%s\n' "$certificate" | sha256sum | cut -d ' ' -f 1)
if [ -f "$state" ] && [ "$(cat "$state")" = "$sum" ]; then
	echo "caramel-reload: the certificate in $file is the one announced already"
	exit 0
fi

failed=0
units=$(printf '%s\n' "${RELOAD_UNITS:-}" | tr ',' ' ')
for unit in $units; do
	if "$systemctl" try-reload-or-restart "$unit"; then
		echo "caramel-reload: reloaded or restarted $unit (if it was running)"
	else
		echo "caramel-reload: could not reload or restart $unit" >&2
		failed=1
	fi
done
if [ "$failed" -eq 0 ]; then
	mkdir -p "$(dirname "$state")" && printf '%s\n' "$sum" >"$state"
fi
exit "$failed"
