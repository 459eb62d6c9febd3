#!/bin/sh
# The baseline for `make bench`: the unchanged path done with the system's tools.
#
#   bench/baseline.sh URL CA_FILE COMBINED_FILE CLIENT_ID
#
# What caramel-embedded does when nothing changed, as a firmware shell script would: check
# the installed certificate with one `openssl x509 -checkend`, then make one `curl` request
# trusting only the CA, showing the combined file as the client certificate, with the client
# id in the User-Agent and the file's modification time as If-Modified-Since. 304 or 200 is
# success (0); an expired certificate or any other answer is 127, as for the client.
set -eu

url=$1
ca_file=$2
combined_file=$3
client_id=$4

openssl x509 -checkend 0 -noout -in "$combined_file" >/dev/null || exit 127
since=$(LC_ALL=C date -u -r "$combined_file" '+%a, %d %b %Y %H:%M:%S GMT')
status=$(curl --silent --show-error --max-time 30 --proto =https \
	--cacert "$ca_file" --cert "$combined_file" \
	--header "User-Agent: caramel-embedded-baseline (client-id=$client_id)" \
	--header "If-Modified-Since: $since" \
	--output /dev/null --write-out '%{http_code}' "$url") || exit 127
case $status in
200 | 304) exit 0 ;;
*) exit 127 ;;
esac
