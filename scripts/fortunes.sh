#!/bin/sh
# Make sure Debian's fortunes files (the split-fortunes benchmark) are on this machine; never downloads them
# ourselves. Looks where lifelong.data.text.fortunes_dir() looks; installs Debian's package when root with apt.
for dir in "${LIFELONG_DATA:+$LIFELONG_DATA/fortunes}" /usr/share/games/fortunes; do
  if [ -n "$dir" ] && [ -d "$dir" ]; then echo "fortunes found in $dir"; exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "fortunes not found: installing Debian's fortunes"
  (apt-get install -y -qq fortunes || (apt-get update -qq && apt-get install -y -qq fortunes)) >/dev/null
  exit $?
fi
echo "fortunes not found. Install it with: sudo apt-get install fortunes" >&2
echo "or put the category files (entries separated by % lines) in \$LIFELONG_DATA/fortunes" >&2
exit 1
