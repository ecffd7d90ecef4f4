# Helpers of both perl supervisors: become a child subreaper (prctl(PR_SET_CHILD_SUBREAPER), by
# syscall number, Linux only), so every orphan of the command's tree (also one that called setsid)
# is re-parented to the supervisor; find its live descendants through /proc; reap its children;
# end its whole tree and tell whether anything survived. $main_pid is the command; reaping it sets
# $main_st and $main_done.
our ($main_pid, $main_st, $main_done) = (0, 0, 0);
sub subreaper {
  return 0 unless $^O eq 'linux';
  require Config;
  my $a = $Config::Config{archname} // '';
  my $nr = $a =~ /^x86_64/ ? 157 : $a =~ /^(aarch64|arm64|riscv64|loongarch64)/ ? 167
         : $a =~ /^(i[3-6]86|arm|s390)/ ? 172 : $a =~ /^(powerpc|ppc)/ ? 171 : 0;
  return $nr && syscall($nr, 36, 1, 0, 0, 0) == 0 ? 1 : 0;
}
sub descendants {
  my ($root) = @_;
  my (%kids, %state);
  opendir(my $d, '/proc') or return ();
  for my $e (readdir($d)) {
    next unless $e =~ /^\d+$/;
    open(my $f, '<', "/proc/$e/stat") or next;
    my $l = <$f>;
    close($f);
    next unless defined($l) && $l =~ /\)\s+(\S)\s+(-?\d+)/;
    push(@{$kids{$2}}, $e);
    $state{$e} = $1;
  }
  closedir($d);
  my (@out, %seen);
  my @todo = ($root);
  while (@todo) {
    for my $c (@{$kids{shift(@todo)} // []}) {
      next if $seen{$c}++;
      push(@todo, $c);
      push(@out, $c) if $state{$c} ne 'Z';
    }
  }
  return @out;
}
sub reap_all {
  for (;;) {
    my $r = waitpid(-1, 1); # WNOHANG (loading POSIX would cost every command milliseconds)
    if ($r > 0) {
      ($main_st, $main_done) = ($?, 1) if $r == $main_pid;
      next;
    }
    return $r; # 0: children remain; -1: none left
  }
}
sub names_of {
  my @n;
  for my $p (@_[0 .. ($#_ < 7 ? $#_ : 7)]) {
    open(my $f, '<', "/proc/$p/comm") or next;
    my $c = <$f> // '';
    close($f);
    chomp($c);
    $c =~ s/[\s,]/_/g;
    push(@n, $c);
  }
  return join(',', @n);
}
sub nap { select(undef, undef, undef, $_[0]); }
# TERM (then KILL after $grace seconds) to every descendant; 1 when no child is left.
sub end_tree {
  my ($grace) = @_;
  return 1 if reap_all() < 0;
  my @d = descendants($$);
  kill('TERM', @d);
  kill('CONT', @d);
  for (my $t = 0; $t < $grace; $t += 0.02) {
    return 1 if reap_all() < 0;
    nap(0.02);
  }
  for my $round (1 .. 25) {
    return 1 if reap_all() < 0;
    kill('KILL', descendants($$));
    for (1 .. 10) {
      return 1 if reap_all() < 0;
      nap(0.02);
    }
  }
  return reap_all() < 0 ? 1 : 0;
}
# The argv that runs $cmd: @launch (a profile's prlimit and bwrap), then the shell. On an SSH host
# whose helper keeps a shell snapshot (SANDBOX_MCP_SHELL_INIT: the functions, aliases and options
# the user's startup files define, sandbox/exec/scripts/helper.pl), bash skips its startup files
# and loads the snapshot instead; the variables they export are already in the environment.
sub command_argv {
  my ($shell, $cmd, @launch) = @_;
  my $init = delete $ENV{SANDBOX_MCP_SHELL_INIT};
  if (defined($init) && !@launch && $shell =~ m{(?:^|/)bash$}) {
    $ENV{SANDBOX_MCP_SHELL_INIT} = $init;
    return ($shell, '--noprofile', '--norc', '-c',
            "[ -r \"\$SANDBOX_MCP_SHELL_INIT\" ] && . \"\$SANDBOX_MCP_SHELL_INIT\"; unset SANDBOX_MCP_SHELL_INIT\n$cmd");
  }
  return (@launch, $shell, '-c', $cmd);
}
