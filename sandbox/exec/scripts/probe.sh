# What a host offers, printed as key=value lines (parse_probe): the remote user's home, the paths
# of perl, bash and setsid(1), the boot id and the kernel name.
printf 'home=%s\n' "$HOME"
printf 'perl=%s\n' "$(command -v perl 2>/dev/null)"
printf 'bash=%s\n' "$(command -v bash 2>/dev/null)"
printf 'setsid=%s\n' "$(command -v setsid 2>/dev/null)"
b=
read -r b 2>/dev/null < /proc/sys/kernel/random/boot_id
printf 'boot_id=%s\n' "$b"
printf 'uname=%s\n' "$(uname -s 2>/dev/null)"
