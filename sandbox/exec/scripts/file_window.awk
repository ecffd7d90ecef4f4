# Formats lines as LocalHost does for a file window (read_file_window): cuts long lines at a UTF-8
# boundary with a marker, stops at `lim` lines or once `mtb` bytes were emitted. In tail mode it
# keeps counting the lines it does not print, to know where the window starts. Last line:
# E PRINTED MORE CUT FOUND BYTES RECORDS.
function cont(c) { return c >= "\200" && c < "\300" }
BEGIN { n = 0; total = 0; cut = 0; more = 0; found = 0; bytes = 0 }
{
  if (!tailmode && NR < off) { next }
  found++
  bytes += length($0) + 1
  if (n >= lim || total >= mtb) {
    more = 1
    if (!tailmode) { exit }
    next
  }
  s = $0
  len = length(s)
  if (len > mlb) {
    keep = mlb
    while (keep > 0 && keep < len && cont(substr(s, keep + 1, 1))) { keep-- }
    s = substr(s, 1, keep) " [... line cut: " (len - keep) " more bytes]"
    cut = 1
  }
  total += length(s) + 8
  print "L" s
  n++
}
END { printf "E %d %d %d %d %d %d\n", n, more, cut, found, bytes, NR }
