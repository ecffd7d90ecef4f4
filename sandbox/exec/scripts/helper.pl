# The helper of an SSH host (perl, perl-base modules only), started once per host by
# sandbox/exec/helper_executor.cpp over one exec channel that stays open: the login shell that
# starts it has run the user's startup files once. It then
#   1. snapshots the shell ($mode 'snapshot'): runs bash as sshd would for a command (it sources
#      /etc/bash.bashrc and ~/.bashrc) and keeps what that leaves: the exported environment, and
#      the functions, aliases and non-default shell options in a file that each command's bash
#      loads instead of its startup files (SANDBOX_MCP_SHELL_INIT, see command_argv in
#      process_tree.pl); in mode 'skip', the environment of the login shell and no snapshot;
#   2. listens on a Unix socket in a directory only the user can enter (checked from / down, see
#      safe_dir; $XDG_RUNTIME_DIR/sandbox-mcp, else ~/.local/state/sandbox-mcp/run, else one in
#      /tmp, see run_dir: the first that is safe, short enough and writable), prints "ready TOKEN SOCKET" (or "failed REASON") on stdout after
#      "sandbox-mcp-helper NONCE: ", and serves each connection (an SSH direct-streamlocal channel) that
#      names TOKEN like sshd serves an exec request: in a new session, with the snapshot's
#      environment, input relayed to stdin, stdout and stderr sent back as frames, then the exit
#      status;
#   3. exits when its own channel closes (its stdin ends): on disconnect, or when the server
#      replaces it. Commands it started are not signalled (as sshd does not), and durable jobs
#      detach from it as from sshd.
# The files it leaves in the run directory carry this host's name (host_id) and boot (boot_id):
# h-HOST-BOOT-PID-RAND.sock and s-HOST-BOOT-PID-RAND.sh; a home on NFS is shared with the helpers
# of other hosts, whose files it never touches.
# A request: "smcp2 TOKEN EXEC_LENGTH INPUT_LENGTH\n", the exec string, the input (a connection
# without the token is closed unanswered). Each answer frame is a type byte, a 4-byte big-endian
# length and the data: h (hello: the helper serves this stream; sent before the request is read,
# which the server writes only then), a (accepted: the command starts now), o (stdout), e (stderr), x ("exit N"
# or "signal N"), s (the startup files or the snapshot changed since it was taken: the server
# starts a new helper and sends the request again; nothing ran), r (nothing ran: no fork or pipe
# now, e.g. the process limit; the server asks again after a pause), f (the helper could not run
# it: why).
# Set before this part (package variables): $mode ('snapshot' or 'skip') and $nonce (32 hex digits
# the server drew for this start; its answer line carries them, so a line the startup files print,
# from a file someone else writes, cannot pass for it: a forged "ready" would send every command,
# with its environment, to another user's socket).
use strict;
our ($mode, $nonce);
no warnings;
use Socket;
use POSIX ();
use Fcntl qw(O_RDWR O_CREAT O_EXCL O_NOFOLLOW);
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
  syswrite(STDOUT, "\nsandbox-mcp-helper $nonce: $_[0]\n");
  exit(0);
}
# The run directory, checked from / down (what OpenSSH's StrictModes checks for authorized_keys):
# every directory on the way belongs to root or to us and is writable by no one else, unless it
# is sticky like /tmp and the entry under it belongs to root or to us; the run directory itself
# is ours, mode 0700, not a link. A symbolic link on the way is followed only when the directory
# holding it passed (so only root or we could have made it) and then its target is checked the
# same way; the path returned has no links left. Missing directories are made (0700). Without
# this, whoever can rename a directory above ours could swap the snapshot every command loads, or
# put their own socket where the server sends commands. Returns the path, or undef and why not.
sub safe_dir {
  my ($d) = @_;
  my @todo = grep { $_ ne '' && $_ ne '.' } split(m{/}, $d);
  my ($at, $links, $open_parent) = ('', 0, 0);
  my @s = lstat('/');
  return (undef, "cannot stat /: $!") unless @s;
  my $why = unsafe_dir('/', \@s, 0);
  return (undef, $why) if $why;
  $open_parent = ($s[2] & 022) != 0;
  while (@todo) {
    my $c = shift(@todo);
    if ($c eq '..') {
      $at =~ s{/[^/]*$}{}; # $at has no links: its parent is its prefix
      $open_parent = ((lstat($at eq '' ? '/' : $at))[2] & 022) != 0;
      next;
    }
    my $p = "$at/$c";
    @s = lstat($p);
    if (!@s && $!{ENOENT}) {
      my $old = umask(077);
      my $made = mkdir($p, 0700);
      my $err = "$!";
      umask($old);
      @s = lstat($p);
      return (undef, "cannot create $p: $err") unless $made || @s;
    }
    return (undef, "cannot stat $p: $!") unless @s;
    if ($open_parent && $s[4] != 0 && $s[4] != $<) {
      return (undef, "$p belongs to uid $s[4], in a directory anyone can write to");
    }
    if (-l _) {
      return (undef, "$p is a symbolic link (the run directory must not be one)") unless @todo;
      return (undef, "too many symbolic links at $p") if ++$links > 40;
      my $t = readlink($p);
      return (undef, "cannot read the symbolic link $p: $!") unless defined($t);
      $at = '' if $t =~ m{^/};
      unshift(@todo, grep { $_ ne '' && $_ ne '.' } split(m{/}, $t));
      next;
    }
    $why = unsafe_dir($p, \@s, !@todo);
    return (undef, $why) if $why;
    $open_parent = ($s[2] & 022) != 0;
    $at = $p;
  }
  return (undef, "the run directory cannot be /") if $at eq '';
  return ($at, '');
}
# Why directory $p (its lstat in $s) is not safe; '' when it is.
sub unsafe_dir {
  my ($p, $s, $last) = @_;
  my ($mode, $uid) = ($s->[2], $s->[4]);
  return "$p is not a directory" unless -d _;
  my $m = sprintf('%04o', $mode & 07777);
  if ($last) {
    return "$p belongs to uid $uid, not to us (uid $<)" if $uid != $<;
    return "$p has mode $m: no one else may enter it (0700)" if $mode & 077;
    return '';
  }
  return "$p belongs to uid $uid (only root or uid $< may own a directory above the run directory)"
    if $uid != 0 && $uid != $<;
  return "$p is writable by group or others (mode $m) and not sticky" if ($mode & 022) && !($mode & 01000);
  return '';
}
# This host, in the names of what the helper leaves in the run directory: a home on NFS is shared
# by the helpers of every node, and a pid says whether a helper is alive only on its own host (and
# in its own pid namespace). The short host name (readable), then a hash of the whole name, the
# machine id and the pid namespace.
sub host_id {
  my $node = (POSIX::uname())[1] // '';
  my $machine = '';
  for my $f ('/etc/machine-id', '/var/lib/dbus/machine-id') {
    next unless open(my $fh, '<', $f);
    $machine = <$fh> // '';
    close($fh);
    last;
  }
  my $ns = readlink('/proc/self/ns/pid') // '';
  my $h = 2166136261; # FNV-1a, 32 bits
  $h = (($h ^ $_) * 16777619) % 4294967296 for unpack('C*', "$node\0$machine\0$ns");
  (my $short = $node) =~ s/\..*//s;
  $short =~ s/[^A-Za-z0-9]/_/g;
  return sprintf('%s_%08x', substr($short, 0, 12), $h);
}
# The lstat of a file as a string: any change to it (a rename over it, a write, a chmod) shows.
sub file_id {
  my @s = lstat($_[0]);
  return @s ? join('.', @s[0, 1, 2, 3, 4, 7, 9, 10]) : '-';
}

# A file that did not exist, for us only (O_EXCL|O_NOFOLLOW: not a name someone made first).
sub new_file {
  my $old = umask(077);
  my $ok = sysopen(my $f, $_[0], O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  umask($old);
  say_and_exit("failed cannot create $_[0]: $!") unless $ok;
  return $f;
}
sub slurp {
  my ($f) = @_;
  my $t = '';
  sysseek($f, 0, 0);
  1 while sysread($f, $t, 65536, length($t));
  close($f);
  return $t;
}

# This boot of the host: a pid of an earlier boot names no process of this one.
sub boot_id {
  my $b = '';
  if (open(my $fh, '<', '/proc/sys/kernel/random/boot_id')) {
    $b = <$fh> // '';
    close($fh);
  }
  my $h = 2166136261;
  $h = (($h ^ $_) * 16777619) % 4294967296 for unpack('C*', $b);
  return sprintf('b%08x', $h);
}
# Can we write here (a full or read-only file system says no)? '' when we can, else why not.
sub unwritable {
  my $probe = "$_[0]/p-$$-" . sprintf('%08x', int(rand(0xffffffff))) . '.tmp';
  my $old = umask(077);
  my $ok = sysopen(my $f, $probe, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  umask($old);
  return "cannot write in $_[0]: $!" unless $ok;
  my $w = syswrite($f, "\0" x 65536);
  my $err = "$!";
  close($f);
  unlink($probe);
  return (defined($w) && $w == 65536) ? '' : "cannot write in $_[0]: $err";
}

my $host = host_id();
my $boot = boot_id();
# A socket's path has room for about 100 bytes.
sub too_long { return length("$_[0]/h-$host-$boot-4294967296-00000000.sock") > 100; }
# The run directory: $XDG_RUNTIME_DIR (the user's, made by the system for this boot), the home's
# state directory, then one in /tmp. /tmp/sandbox-mcp-UID is anyone's to make first: when it is not
# ours (or not safe), one of ours named /tmp/sandbox-mcp-UID-RANDOM, made new if need be. One that
# cannot be made, written or named in a socket's path passes to the next; a home's that others
# could change stops here (the user is told what to fix).
sub run_dir {
  my @why;
  my @dirs;
  my $mine = $home =~ m{^/} ? "$home/.local/state/sandbox-mcp/run" : '';
  push(@dirs, "$ENV{XDG_RUNTIME_DIR}/sandbox-mcp") if ($ENV{XDG_RUNTIME_DIR} // '') =~ m{^/};
  push(@dirs, $mine) if $mine ne '';
  my $tmp = "/tmp/sandbox-mcp-$<";
  push(@dirs, $tmp);
  if (opendir(my $th, '/tmp')) {
    push(@dirs, map { "/tmp/$_" } sort grep { /^sandbox-mcp-$<-[0-9a-f]{8}$/ } readdir($th));
    closedir($th);
  }
  push(@dirs, map { sprintf('%s-%08x', $tmp, int(rand(0xffffffff))) } 1 .. 3);
  for my $d (@dirs) {
    if (too_long($d)) {
      push(@why, "$d: too long for a socket path");
      next;
    }
    my ($at, $w) = safe_dir($d);
    return (undef, "cannot use $d: $w") if $d eq $mine && $w ne '' && $w !~ /^cannot (create|stat) /;
    $w = "$at: too long for a socket path" if defined($at) && too_long($at); # links made it longer
    $w ||= unwritable($at);
    return ($at, '') unless $w;
    push(@why, $w);
  }
  my %seen;
  return (undef, 'no run directory for the helper: ' . join('; ', grep { !$seen{$_}++ } @why));
}
my ($dir, $why) = run_dir();
say_and_exit("failed $why") unless defined($dir);
# What helpers of this host left behind when they are gone: their sockets, and their snapshots
# after a day (a command or job a helper started may load its snapshot after the helper exited).
# Gone: of an earlier boot, or no process has its pid. Names of another host are never touched:
# its helpers may be alive (older names without the boot are this host's when their pid is dead).
if (opendir(my $dh, $dir)) {
  for my $e (readdir($dh)) {
    next unless $e =~ /^([hs])-([A-Za-z0-9_]+)-(?:(b[0-9a-f]{8})-)?(\d+)-[0-9a-f]{8}\.(?:sock|sh|raw|env)$/;
    next if $2 ne $host;
    next if (!defined($3) || $3 eq $boot) && (kill(0, $4) || $!{EPERM});
    my @s = lstat("$dir/$e");
    next unless @s && (-S _ || -f _);
    unlink("$dir/$e") if $1 eq 'h' || $s[9] < time() - 86400;
  }
  closedir($dh);
}
my $token = '';
if (open(my $r, '<', '/dev/urandom')) {
  binmode($r);
  read($r, $token, 16);
  close($r);
}
say_and_exit("failed cannot read 16 bytes from /dev/urandom: $!") unless length($token) == 16;
# Every request carries it: a process that reaches the socket (a sandboxed command of the same
# user, say) cannot have the helper run anything without it.
$token = unpack('H*', $token);
my $tag = sprintf('%s-%s-%d-%08x', $host, $boot, $$, int(rand(0xffffffff)));
my $sock = "$dir/h-$tag.sock";
my $snap = "$dir/s-$tag.sh";
my $snap_id = '';
my %cmdenv = %ENV;
delete @cmdenv{qw(SHLVL _ PWD OLDPWD)};
if ($mode eq 'snapshot') {
  my $base = "$dir/s-$tag";
  # What bash -c prints for shell options with no startup file: only the options the files change
  # go into the snapshot.
  my %default = map { $_ => 1 } split(/\n/, `bash --noprofile --norc -c 'shopt -p; set +o' 2>/dev/null`);
  # The files bash writes to are made here, new (an existing name or a link is refused) and ours
  # only, and read back through the same handles: nothing is opened again by name.
  my ($rawf, $envf) = (new_file("$base.raw"), new_file("$base.env"));
  unlink("$base.raw", "$base.env");
  my $pid = fork();
  say_and_exit("failed fork: $!") unless defined($pid);
  if ($pid == 0) {
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', '/dev/null');
    POSIX::dup2(fileno($rawf), 57);
    POSIX::dup2(fileno($envf), 58);
    delete $ENV{SHLVL}; # bash sources ~/.bashrc for a command from sshd only at the top level
    $ENV{SMCP_SNAPSHOT_BASE} = $base; # a startup file can tell the snapshot's bash from others
    exec('bash', '-c', '{ alias -p; declare -f; shopt -p; set +o; } >&57 && env -0 >&58');
    POSIX::_exit(127);
  }
  waitpid($pid, 0);
  my $st = $?;
  my ($raw, $env) = (slurp($rawf), slurp($envf));
  if ($st != 0 || $env eq '') {
    my $w = unwritable($dir); # a full file system fails bash's writes too
    say_and_exit("failed cannot take the snapshot: $w") if $w;
    say_and_exit("failed bash exited with status " . ($st >> 8) . " before the snapshot was taken"
                 . " (does a startup file call exit?)");
  }
  %cmdenv = ();
  for my $kv (split(/\0/, $env)) {
    my ($k, $v) = split(/=/, $kv, 2);
    $cmdenv{$k} = $v if defined($v) && $k =~ /^[A-Za-z_][A-Za-z0-9_]*$/;
  }
  delete @cmdenv{qw(SHLVL _ PWD OLDPWD SMCP_SNAPSHOT_BASE)};
  my @lines = grep { !(/^(shopt|set) / && $default{$_}) } split(/\n/, $raw);
  my $aliases = grep { /^alias / } @lines;
  my $o = new_file($snap);
  my $text = "# sandbox-mcp: the shell snapshot of ~/.bashrc and /etc/bash.bashrc\n"
    . ($aliases ? "shopt -s expand_aliases\n" : '') . join("\n", @lines) . "\n";
  my $w = syswrite($o, $text);
  my $err = "$!";
  close($o);
  unless (defined($w) && $w == length($text)) {
    unlink($snap);
    say_and_exit("failed cannot write $snap: " . (defined($w) ? 'No space left on device (a short write)' : $err));
  }
  # Checked before each command: a snapshot changed since (by anyone) is taken again, not loaded.
  $snap_id = file_id($snap);
  $cmdenv{SANDBOX_MCP_SHELL_INIT} = $snap;
} else {
  $cmdenv{SANDBOX_MCP_SHELL_INIT} = '/dev/null';
}
# Taken after the snapshot's bash ran the startup files: one that writes a watched file each time
# it runs (an append to ~/.profile) changed it already, and must not make every request stale.
my $sig = signature();

socket(my $ls, PF_UNIX, SOCK_STREAM, 0) or say_and_exit("failed socket: $!");
{
  # A new name (bind refuses one that exists), reachable by us only.
  my $old = umask(077);
  my $ok = bind($ls, pack_sockaddr_un($sock));
  umask($old);
  say_and_exit("failed cannot bind $sock: $!") unless $ok;
}
listen($ls, 64) or say_and_exit("failed listen: $!");
$SIG{PIPE} = 'IGNORE';
syswrite(STDOUT, "\nsandbox-mcp-helper $nonce: ready $token $sock\n");

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
  # Hello first: the server sends the request only after this, and only if it has not given up on
  # this stream meanwhile (then it closes it): a request it sent again elsewhere never reaches a
  # helper that was too slow to greet, so nothing runs twice.
  POSIX::_exit(0) unless frame($c, 'h', '');
  my $buf = '';
  while ($buf !~ /\n/) {
    my $r = sysread($c, $buf, 65536, length($buf));
    POSIX::_exit(0) unless $r && length($buf) < 1048576;
  }
  POSIX::_exit(0) unless $buf =~ s/^smcp2 ([0-9a-f]{32}) (\d+) (\d+)\n// && $1 eq $token;
  my ($elen, $ilen) = ($2, $3);
  # The exec string, then (for a perl program) the whole input; what came with the header first.
  my $more = $elen - length($buf);
  $buf .= read_exact($c, $more) // POSIX::_exit(0) if $more > 0;
  my $exec = substr($buf, 0, $elen, '');
  if (signature() ne $sig || ($snap_id ne '' && file_id($snap) ne $snap_id)) {
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
    frame($c, 'r', "pipe: $!"); # nothing ran: the server asks again after a pause
    POSIX::_exit(0);
  }
  # Before anything runs: a stream that ends without this ran nothing and may be sent again.
  POSIX::_exit(0) unless frame($c, 'a', '');
  my $pid = fork();
  if (!defined($pid)) {
    frame($c, 'r', "fork: $!"); # nothing ran (the process limit?): the server asks again after a pause
    POSIX::_exit(0);
  }
  if ($pid == 0) {
    $token = ''; # not the command's to know
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
    my $c;
    unless (accept($c, $ls)) {
      select(undef, undef, undef, 0.1) if $!{EMFILE} || $!{ENFILE} || $!{ENOMEM}; # no spinning on it
      next;
    }
    # sshd connects as us; anyone else is not served (the directory should already keep them out).
    my $cred = defined(&Socket::SO_PEERCRED) ? getsockopt($c, SOL_SOCKET, Socket::SO_PEERCRED()) : undef;
    if (defined($cred) && (unpack('i3', $cred))[1] != $<) {
      close($c);
      next;
    }
    my $pid = fork();
    if (!defined($pid)) {
      # Nothing ran (the process limit?): said on the stream, so the server asks again after a
      # pause rather than taking this helper for dead.
      # (No request comes before a hello, so there is nothing unread to drain.)
      frame($c, 'r', "fork: $!");
    } elsif ($pid == 0) {
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
