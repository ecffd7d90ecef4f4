# Reads a window of the text file $f: refuses what is missing, a directory, special, unreadable or
# binary ("error KIND"), prints "S SIZE NO_FINAL_NEWLINE", the lines through the awk program $prog
# from line $off (or the last -$off lines), and "T NEWLINES" for a tail window of a file of at most
# $big bytes. Set before this part: $f, $off, $lim, $mlb, $mtb, $big, $prog.
LC_ALL=C
export LC_ALL
if [ ! -e "$f" ]; then echo "error not_found"; exit 0; fi
if [ -d "$f" ]; then echo "error directory"; exit 0; fi
if [ ! -f "$f" ]; then echo "error special"; exit 0; fi
if [ ! -r "$f" ]; then echo "error denied"; exit 0; fi
if head -c 8192 < "$f" | od -An -tx1 | grep -q ' 00'; then echo "error binary"; exit 0; fi
set -- $(wc -c < "$f")
size=$1
nonl=0
if [ "$size" -gt 0 ]; then
  last=$(tail -c 1 < "$f")
  [ -n "$last" ] && nonl=1
fi
echo "S $size $nonl"
if [ "$off" -gt 0 ]; then
  awk -v off="$off" -v lim="$lim" -v mlb="$mlb" -v mtb="$mtb" -v tailmode=0 "$prog" < "$f"
else
  tail -n "$((-off))" < "$f" | awk -v off=1 -v lim="$lim" -v mlb="$mlb" -v mtb="$mtb" -v tailmode=1 "$prog"
  if [ "$size" -le "$big" ]; then
    set -- $(wc -l < "$f")
    echo "T $1"
  fi
fi
