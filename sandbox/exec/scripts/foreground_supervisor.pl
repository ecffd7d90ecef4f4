# The foreground supervisor (perl): reports its session ("sid SID PID SUBREAPER"), runs the command
# with $shell -c in $cwd with @env, and reports how it ended ("exit N" or "signal N") and what it
# left running ("left K NAMES", then "gone" or "survived"), each as a record "\x1e$n WORDS\n" on
# stderr. Set before this part: $n (the nonce), $cmd, $cwd, $shell, @launch, @env, @sigs, $grace, $limit
# (the guard's deadline in seconds, 0: none); the helpers of process_tree.pl.
$SIG{$_} = 'IGNORE' for @sigs;
my $sr = subreaper();
my $sid = getpgrp();
if (open(my $f, '<', "/proc/$$/stat")) {
  my $l = <$f>;
  close($f);
  $sid = $1 if defined($l) && $l =~ /\)\s+\S+\s+-?\d+\s+-?\d+\s+(\d+)/;
}
syswrite(STDERR, "\x1e$n sid $sid $$ $sr\n");
if ($cwd ne '' && !-d $cwd) {
  syswrite(STDERR, "\x1e$n error cwd\n");
  exit(0);
}
my $pid = fork();
if (!defined($pid)) {
  syswrite(STDERR, "sandbox-mcp: fork failed: $!\n\x1e$n exit 127\n");
  exit(0);
}
if ($pid == 0) {
  $SIG{$_} = 'DEFAULT' for @sigs;
  open(STDIN, '<', '/dev/null');
  if ($cwd ne '' && !chdir($cwd)) {
    syswrite(STDERR, "sandbox-mcp: cannot change to the working directory $cwd: $!\n");
    exit(126);
  }
  while (@env) {
    my $k = shift(@env);
    $ENV{$k} = shift(@env);
  }
  my @argv = command_argv($shell, $cmd, @launch);
  exec {$argv[0]} @argv;
  syswrite(STDERR, "sandbox-mcp: cannot execute " . (@launch ? $launch[0] : $shell) . ": $!\n");
  exit(127);
}
$main_pid = $pid;
# The server ends the command on its timeout; this guard does it when the server is gone.
eval {
  local $SIG{ALRM} = sub { die "expired\n" }; # perl restarts waitpid after a handler that returns
  alarm($limit) if $limit > 0;
  until ($main_done) {
    my $r = waitpid(-1, 0);
    if ($r == $pid) {
      ($main_st, $main_done) = ($?, 1);
    } elsif ($r < 0) {
      last;
    }
  }
  alarm(0);
};
alarm(0);
my $gone = 1;
my $ended = 0;
if (!$main_done) {
  $gone = end_tree($grace);
  $ended = 1;
}
my $st = $main_st;
syswrite(STDERR, ($st & 127) ? "\x1e$n signal " . ($st & 127) . "\n" : "\x1e$n exit " . ($st >> 8) . "\n");
if ($sr && !$ended) {
  # What the command left running gets a moment to end by itself, then is ended.
  for (1 .. 5) {
    last if reap_all() < 0;
    nap(0.02);
  }
  if (reap_all() == 0) {
    my @left = descendants($$);
    syswrite(STDERR, "\x1e$n left " . scalar(@left) . " " . names_of(@left) . "\n") if @left;
    $gone = end_tree($grace);
  }
}
syswrite(STDERR, "\x1e$n " . ($gone ? "gone" : "survived") . "\n") if $sr;
exit(0);
