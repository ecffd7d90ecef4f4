# The helper of an SSH host (perl, perl-base modules only), started once per host by
# sandbox/exec/helper_executor.cpp over one exec channel that stays open: the login shell that
# starts it has run the user's startup files once. It then
#   1. snapshots the shell ($mode 'snapshot'): runs bash as sshd would for a command (it sources
#      /etc/bash.bashrc and ~/.bashrc) and keeps what that leaves: the exported environment, and
#      the functions, aliases and non-default shell options in a file that each command's bash
#      loads instead of its startup files (SANDBOX_MCP_SHELL_INIT, see command_argv in
#      process_tree.pl); in mode 'skip', the environment of the login shell and no snapshot;
#   2. listens on a Unix socket in a directory only the user can enter, prints "ready SOCKET" (or
#      "failed REASON") on stdout after "sandbox-mcp-helper: ", and serves each connection (an SSH direct-streamlocal channel)
#      like sshd serves an exec request: in a new session, with the snapshot's environment, input
#      relayed to stdin, stdout and stderr sent back as frames, then the exit status;
#   3. exits when its own channel closes (its stdin ends): on disconnect, or when the server
#      replaces it. Commands it started are not signalled (as sshd does not), and durable jobs
#      detach from it as from sshd.
# A request: "smcp1 EXEC_LENGTH INPUT_LENGTH\n", the exec string, the input. Each answer frame is a
# type byte, a 4-byte big-endian length and the data: a (accepted: the command starts now), o
# (stdout), e (stderr), x ("exit N" or "signal N"), s (the startup files changed since the snapshot: the server starts a new helper
# and sends the request again; nothing ran), f (the helper could not run it: why).
# Set before this part (a package variable): $mode ('snapshot' or 'skip').
use strict;
our $mode;
no warnings;
use Socket;
use POSIX ();
require Config; # for the supervisors' subreaper(), loaded once here rather than per command

my $home = $ENV{HOME} // '';
my @startup = map { $_ =~ m{^/} ? $_ : "$home/$_" }
  ('.bashrc', '.bash_profile', '.bash_login', '.profile', '.zshenv', '/etc/bash.bashrc', '/etc/profile',
   '/etc/environment');
# Inode, size, mtime and a checksum of the contents of each (mtime has whole seconds only here:
# an edit within the same second that keeps the size shows in the checksum).
sub signature {
  return join(' ', map {
    my @s = stat($_);
    my $sum = 0;
    if (@s && $s[7] < 1048576 && open(my $f, '<', $_)) {
      local $/;
      my $t = <$f>;
      close($f);
      $sum = unpack('%32C*', $t // '') . '.' . unpack('%32N*', $t // '');
    }
    @s ? "$s[1].$s[7].$s[9].$sum" : '-';
  } @startup);
}
# What the server reads comes after this marker: the startup files may have printed before.
sub say_and_exit {
  syswrite(STDOUT, "\nsandbox-mcp-helper: $_[0]\n");
  exit(0);
}
sub private_dir {
  my ($d) = @_;
  for my $p (split_path($d)) {
    mkdir($p, 0700) unless -d $p;
  }
  my @s = lstat($d);
  return @s && -d _ && $s[4] == $< && ($s[2] & 077) == 0;
}
sub split_path {
  my ($d) = @_;
  my @parts;
  my $acc = '';
  for my $c (grep { $_ ne '' } split(m{/}, $d)) {
    $acc .= "/$c";
    push(@parts, $acc);
  }
  return @parts;
}

my $sig = signature();
my $dir = "$home/.local/state/sandbox-mcp/run";
$dir = "/tmp/sandbox-mcp-$<" if $home eq '' || length("$dir/h-$$-0000000000.sock") > 100;
say_and_exit("failed cannot use $dir: it must be a directory of this user that no one else can enter")
  unless private_dir($dir);
# Sockets of helpers that are gone (their pid is in the name), and their snapshots after a day (a
# command or job a helper started may load its snapshot after the helper exited).
if (opendir(my $dh, $dir)) {
  for my $e (readdir($dh)) {
    next unless $e =~ /^([hs])-(\d+)-/;
    next if kill(0, $2) || $!{EPERM};
    unlink("$dir/$e") if $1 eq 'h' || -M "$dir/$e" > 1;
  }
  closedir($dh);
}
my $tag = sprintf('%d-%08x', $$, int(rand(0xffffffff)));
my $sock = "$dir/h-$tag.sock";
my $snap = "$dir/s-$tag.sh";
my %cmdenv = %ENV;
delete @cmdenv{qw(SHLVL _ PWD OLDPWD)};
if ($mode eq 'snapshot') {
  my $base = "$dir/s-$tag";
  # What bash -c prints for shell options with no startup file: only the options the files change
  # go into the snapshot.
  my %default = map { $_ => 1 } split(/\n/, `bash --noprofile --norc -c 'shopt -p; set +o' 2>/dev/null`);
  my $pid = fork();
  say_and_exit("failed fork: $!") unless defined($pid);
  if ($pid == 0) {
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', '/dev/null');
    delete $ENV{SHLVL}; # bash sources ~/.bashrc for a command from sshd only at the top level
    $ENV{SMCP_SNAPSHOT_BASE} = $base;
    exec('bash', '-c', '{ alias -p; declare -f; shopt -p; set +o; } > "$SMCP_SNAPSHOT_BASE.raw" && '
         . 'env -0 > "$SMCP_SNAPSHOT_BASE.env"');
    POSIX::_exit(127);
  }
  waitpid($pid, 0);
  my $st = $?;
  my ($raw, $env) = ('', '');
  if (open(my $f, '<', "$base.raw")) { local $/; $raw = <$f>; close($f); }
  if (open(my $f, '<', "$base.env")) { local $/; $env = <$f>; close($f); }
  unlink("$base.raw", "$base.env");
  say_and_exit("failed bash exited with status " . ($st >> 8) . " before the snapshot was taken"
               . " (does a startup file call exit?)") if $st != 0 || $env eq '';
  %cmdenv = ();
  for my $kv (split(/\0/, $env)) {
    my ($k, $v) = split(/=/, $kv, 2);
    $cmdenv{$k} = $v if defined($v) && $k =~ /^[A-Za-z_][A-Za-z0-9_]*$/;
  }
  delete @cmdenv{qw(SHLVL _ PWD OLDPWD SMCP_SNAPSHOT_BASE)};
  my @lines = grep { !(/^(shopt|set) / && $default{$_}) } split(/\n/, $raw);
  my $aliases = grep { /^alias / } @lines;
  open(my $o, '>', $snap) or say_and_exit("failed cannot write $snap: $!");
  print $o "# sandbox-mcp: the shell snapshot of ~/.bashrc and /etc/bash.bashrc\n";
  print $o "shopt -s expand_aliases\n" if $aliases;
  print $o join("\n", @lines), "\n";
  close($o) or say_and_exit("failed cannot write $snap: $!");
  $cmdenv{SANDBOX_MCP_SHELL_INIT} = $snap;
} else {
  $cmdenv{SANDBOX_MCP_SHELL_INIT} = '/dev/null';
}

socket(my $ls, PF_UNIX, SOCK_STREAM, 0) or say_and_exit("failed socket: $!");
unlink($sock);
bind($ls, pack_sockaddr_un($sock)) or say_and_exit("failed cannot bind $sock: $!");
listen($ls, 64) or say_and_exit("failed listen: $!");
$SIG{PIPE} = 'IGNORE';
syswrite(STDOUT, "\nsandbox-mcp-helper: ready $sock\n");

sub frame {
  my ($c, $type, $data) = @_;
  my $msg = $type . pack('N', length($data)) . $data;
  while (length($msg)) {
    my $w = syswrite($c, $msg);
    return 0 unless defined($w) && $w > 0;
    substr($msg, 0, $w) = '';
  }
  return 1;
}

sub read_exact {
  my ($c, $n) = @_;
  my $buf = '';
  while (length($buf) < $n) {
    my $r = sysread($c, $buf, $n - length($buf), length($buf));
    return undef unless $r;
  }
  return $buf;
}

# One connection: the request, then the command, relayed until it ended and its output closed.
# The client never half-closes (the request says how long its input is), so an end of the
# connection means the channel was closed: then, like sshd, the command's pipes are closed.
sub serve {
  my ($c) = @_;
  my $buf = '';
  while ($buf !~ /\n/) {
    my $r = sysread($c, $buf, 65536, length($buf));
    POSIX::_exit(0) unless $r && length($buf) < 1048576;
  }
  POSIX::_exit(0) unless $buf =~ s/^smcp1 (\d+) (\d+)\n//;
  my ($elen, $ilen) = ($1, $2);
  # The exec string, then (for a perl program) the whole input; what came with the header first.
  my $more = $elen - length($buf);
  $buf .= read_exact($c, $more) // POSIX::_exit(0) if $more > 0;
  my $exec = substr($buf, 0, $elen, '');
  if (signature() ne $sig) {
    frame($c, 's', '');
    POSIX::_exit(0);
  }
  # A perl program (the supervisors, `exec 'PERL' -`) runs in this process's copy: no exec of sh
  # and perl for each command.
  my $inline = $exec =~ /^exec '[^']*perl[^']*' -$/;
  my $input = '';
  if ($inline) {
    $more = $ilen - length($buf);
    $buf .= read_exact($c, $more) // POSIX::_exit(0) if $more > 0;
    ($input, $buf, $ilen) = ($buf, '', 0);
  }
  my ($ir, $iw, $or, $ow, $er, $ew);
  unless (pipe($ir, $iw) && pipe($or, $ow) && pipe($er, $ew)) {
    frame($c, 'f', "pipe: $!");
    POSIX::_exit(0);
  }
  # Before anything runs: a stream that ends without this ran nothing and may be sent again.
  POSIX::_exit(0) unless frame($c, 'a', '');
  my $pid = fork();
  if (!defined($pid)) {
    frame($c, 'f', "fork: $!");
    POSIX::_exit(0);
  }
  if ($pid == 0) {
    POSIX::setsid();
    $SIG{PIPE} = 'DEFAULT';
    open(STDIN, '<&', $ir);
    open(STDOUT, '>&', $ow);
    open(STDERR, '>&', $ew);
    # Nothing else of the helper's stays open in the command (a perl program runs without an exec
    # that would close them): a daemon it starts must not hold the output pipes or the stream.
    close($_) for ($ir, $iw, $or, $ow, $er, $ew, $c);
    %ENV = %cmdenv;
    if ($inline) {
      open(STDIN, '<', '/dev/null');
      # exit without perl's global destruction, which would touch (and so copy) every page this
      # process shares with the helper: milliseconds per command.
      no warnings 'once';
      select(STDERR);
      $| = 1;
      select(STDOUT);
      $| = 1; # nothing to flush then (a method call like STDOUT->flush would load IO::Handle)
      *CORE::GLOBAL::exit = sub { POSIX::_exit(@_ ? $_[0] : 0) };
      eval("package main; no strict; $input\n;");
      syswrite(STDERR, "sandbox-mcp helper: $@") if $@;
      CORE::GLOBAL::exit($@ ? 255 : 0);
    }
    exec('/bin/sh', '-c', $exec);
    syswrite(STDERR, "sandbox-mcp helper: cannot run /bin/sh: $!\n");
    POSIX::_exit(127);
  }
  close($ir);
  close($ow);
  close($ew);
  # Input that came with the request is written first.
  my $pending = $buf;
  $ilen -= length($buf);
  close($iw) if $ilen <= 0 && !length($pending);
  my ($rin, $win, $rout, $wout);
  my %open = (fileno($or) => [$or, 'o'], fileno($er) => [$er, 'e']);
  my $client_in = $ilen > 0;
  my $gone = 0; # the client went away: stop relaying
  while (%open && !$gone) {
    $rin = '';
    $win = '';
    vec($rin, $_, 1) = 1 for keys %open;
    vec($rin, fileno($c), 1) = 1 if !$client_in || length($pending) < 65536;
    vec($win, fileno($iw), 1) = 1 if length($pending);
    my $n = select($rout = $rin, $wout = $win, undef, undef);
    next if $n < 0 && $!{EINTR};
    last if $n < 0;
    if (vec($rout, fileno($c), 1)) {
      my $r = sysread($c, $pending, $client_in ? ($ilen < 65536 ? $ilen : 65536) : 4096, length($pending));
      if (!$r || !$client_in) {
        $gone = 1;
        last;
      }
      $ilen -= $r;
      $client_in = 0 if $ilen <= 0;
    }
    if (length($pending) && vec($wout, fileno($iw), 1)) {
      my $w = syswrite($iw, $pending);
      if (!defined($w)) {
        $pending = '';
      } else {
        substr($pending, 0, $w) = '';
      }
      close($iw) if !length($pending) && !$client_in;
    }
    for my $fd (keys %open) {
      next unless vec($rout, $fd, 1);
      my ($h, $type) = @{$open{$fd}};
      my $r = sysread($h, my $buf, 65536);
      if (!$r) {
        close($h);
        delete $open{$fd};
      } elsif (!frame($c, $type, $buf)) {
        $gone = 1;
      }
    }
  }
  # The client closed the channel: like sshd, close the command's pipes and leave it be.
  POSIX::_exit(0) if $gone;
  close($iw) if $client_in || length($pending);
  waitpid($pid, 0);
  my $st = $?;
  frame($c, 'x', ($st & 127) ? 'signal ' . ($st & 127) : 'exit ' . ($st >> 8));
  POSIX::_exit(0);
}

# The main loop: a connection is served by a child of its own; the loop ends with the channel.
my $children = 0;
for (;;) {
  my $rin = '';
  vec($rin, fileno(STDIN), 1) = 1;
  vec($rin, fileno($ls), 1) = 1;
  my $rout;
  my $n = select($rout = $rin, undef, undef, 5);
  1 while waitpid(-1, 1) > 0;
  next if $n < 0 && $!{EINTR};
  last if $n < 0;
  if (vec($rout, fileno(STDIN), 1)) {
    my $r = sysread(STDIN, my $buf, 4096);
    last unless $r;
  }
  if (vec($rout, fileno($ls), 1)) {
    accept(my $c, $ls) or next;
    my $pid = fork();
    if (defined($pid) && $pid == 0) {
      close($ls);
      open(STDIN, '<', '/dev/null');
      open(STDOUT, '>', '/dev/null');
      open(STDERR, '>', '/dev/null');
      serve($c);
    }
    close($c);
  }
}
unlink($sock);
exit(0);
