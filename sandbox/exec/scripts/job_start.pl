# Starts a durable job (perl): creates its directory $dir (command, boot_id, output), forks a
# supervisor in its own session that writes pid, starttime and tracked, runs the command with its
# output relayed into $dir/output up to $cap bytes, ends what it left running and writes
# $dir/status. Prints "pid PID" (the supervisor's pid, also its session id) or "error KIND TEXT".
# Set before this part: $dir, $cmd, $cwd, $shell, @launch, @env, @sigs, $cap, $grace; the helpers of
# process_tree.pl.
require POSIX;
sub fail { syswrite(STDOUT, "error $_[0] $_[1]\n"); exit(0); }
sub put {
  my ($path, $text) = @_;
  open(my $f, '>', "$path.tmp") or return 0;
  print $f $text;
  close($f) or return 0;
  return rename("$path.tmp", $path);
}
fail('cwd', "working directory $cwd does not exist") if $cwd ne '' && !-d $cwd;
my $acc = '';
my @parts = split(m{/}, $dir);
pop(@parts);
for my $p (@parts) {
  next if $p eq '';
  $acc .= "/$p";
  mkdir($acc, 0700) unless -d $acc;
}
mkdir($dir, 0700) or fail('io', "cannot create job directory $dir: $!");
my $boot = '';
if (open(my $b, '<', '/proc/sys/kernel/random/boot_id')) { $boot = <$b> // ''; close($b); chomp($boot); }
put("$dir/command", "$cmd\n");
put("$dir/boot_id", "$boot\n");
open(my $o, '>', "$dir/output") or fail('io', "cannot create $dir/output: $!");
close($o);
pipe(my $r, my $w) or fail('io', "pipe: $!");
my $mid = fork();
fail('io', "fork: $!") unless defined($mid);
if ($mid == 0) {
  close($r);
  my $sup = fork();
  POSIX::_exit(defined($sup) ? 0 : 1) if !defined($sup) || $sup != 0;
  POSIX::setsid();
  # Orphans of the job's tree (also those that left its session) become our children.
  my $sr = subreaper();
  open(STDIN, '<', '/dev/null');
  open(STDOUT, '>', '/dev/null');
  open(STDERR, '>', '/dev/null');
  $SIG{$_} = 'IGNORE' for @sigs;
  # The start time (field 22 of /proc/PID/stat) tells this supervisor from a later process that
  # gets the same pid.
  if (open(my $sf, '<', "/proc/$$/stat")) {
    my $l = <$sf> // '';
    close($sf);
    $l =~ s/^.*\) //s;
    my @f = split(/ /, $l);
    put("$dir/starttime", "$f[19]\n") if defined $f[19];
  }
  put("$dir/tracked", "1\n") if $sr;
  put("$dir/pid", "$$\n");
  syswrite($w, "$$\n");
  close($w);
  # The command writes into a pipe; the supervisor copies it to the output file up to the cap.
  my $piped = pipe(my $pr, my $pw);
  my $job = fork();
  if (defined($job) && $job == 0) {
    $SIG{$_} = 'DEFAULT' for @sigs;
    if ($piped) {
      close($pr);
      open(STDOUT, '>&', $pw) or POSIX::_exit(126);
    } else {
      open(STDOUT, '>>', "$dir/output") or POSIX::_exit(126);
    }
    open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
    if ($cwd ne '' && !chdir($cwd)) {
      syswrite(STDERR, "sandbox-mcp: cannot change to the working directory $cwd: $!\n");
      POSIX::_exit(126);
    }
    while (@env) {
      my $k = shift(@env);
      $ENV{$k} = shift(@env);
    }
    my @argv = command_argv($shell, $cmd, @launch);
    exec {$argv[0]} @argv;
    syswrite(STDERR, "sandbox-mcp: cannot execute " . (@launch ? $launch[0] : $shell) . ": $!\n");
    POSIX::_exit(127);
  }
  if (!defined($job)) {
    put("$dir/status", "exit 127\n");
    POSIX::_exit(1);
  }
  $main_pid = $job;
  my $st;
  my $reaped = 0;
  if ($piped) {
    close($pw);
    open(my $out, '>>', "$dir/output");
    my ($written, $discarded) = (0, 0);
    my $copy = sub {
      my $len = length($_[0]);
      my $room = $cap > $written ? $cap - $written : 0;
      my $keep = $len < $room ? $len : $room;
      if ($keep > 0) {
        syswrite($out, $_[0], $keep);
        $written += $keep;
      }
      if ($keep < $len) {
        syswrite($out, "\n[sandbox-mcp: output cap of $cap bytes reached; further output is discarded]\n")
          unless $discarded;
        $discarded += $len - $keep;
      }
    };
    my $rin = '';
    vec($rin, fileno($pr), 1) = 1;
    my $open = 1;
    while ($open && !$reaped) {
      my $n = select(my $rout = $rin, undef, undef, 0.2);
      if ($n > 0) {
        my $got = sysread($pr, my $buf, 65536);
        if ($got) { $copy->($buf); } elsif (defined($got)) { $open = 0; }
      }
      reap_all();
      if ($main_done) {
        $st = $main_st;
        $reaped = 1;
      }
    }
    # The command ended: take what is already in the pipe. Processes it left behind that write
    # later get EPIPE: the job is over.
    while ($open && select(my $rout = $rin, undef, undef, 0) > 0) {
      my $got = sysread($pr, my $buf, 65536);
      last unless $got;
      $copy->($buf);
    }
    syswrite($out, "[sandbox-mcp: $discarded bytes of output were discarded after the cap]\n") if $discarded;
    close($pr);
  }
  until ($main_done) {
    my $r = waitpid(-1, 0);
    if ($r == $job) {
      ($main_st, $main_done) = ($?, 1);
    } elsif ($r < 0 && !$!{EINTR}) {
      last;
    }
  }
  $st = $main_st;
  # A job is its whole tree: what the command left running is ended with it, and said so. What is
  # ending anyway (a kill reached the whole tree) gets a moment first, so it is not named.
  for (1 .. 5) {
    last if reap_all() < 0;
    nap(0.02);
  }
  if (reap_all() == 0) {
    my @left = descendants($$);
    my $gone = end_tree($grace);
    if (@left && open(my $lo, '>>', "$dir/output")) {
      syswrite($lo, "[sandbox-mcp: the command ended; " . scalar(@left) .
                    (@left == 1 ? " process it left running was ended (" : " processes it left running were ended (") .
                    names_of(@left) . ($gone ? ")]\n" : "); some survived SIGKILL]\n"));
      close($lo);
    }
  }
  put("$dir/status", ($st & 127) ? "signal " . ($st & 127) . "\n" : "exit " . ($st >> 8) . "\n");
  POSIX::_exit(0);
}
close($w);
waitpid($mid, 0);
my $pid = <$r>;
fail('io', "the job supervisor did not start (see $dir)") unless defined($pid) && $pid =~ /^(\d+)/;
syswrite(STDOUT, "pid $1\n");
