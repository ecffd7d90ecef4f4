# Removes the job directory $d: prints "removed", or "gone" when it was already missing.
[ -d "$d" ] || { echo gone; exit 0; }
rm -rf -- "$d" 2>&1 && echo removed
