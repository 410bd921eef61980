# A synthetic system closure for bench/prepare_root.ts: `parts` store paths
# of `files` files of `size` bytes each (random data, so nothing deduplicates),
# a shell, and a toplevel with sw/bin/sh referring to all of them. The tests
# give its boot.json as a link (`bootLink`) to see where a root reads it.
{ parts ? 20, files ? 1000, size ? 10240, salt ? "0", bootLink ? "" }:
let
  sh = args: name: derivation ({ inherit name; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; } // args);
  part = i: sh {
    args = [ "-c" "mkdir -p $out && cd $out && head -c ${toString (files * size)} /dev/urandom | split -b ${toString size} -a 5 -d - f" ];
  } "synthetic-part-${toString i}-${salt}";
  shell = sh { args = [ "-c" "mkdir -p $out/bin && cp /bin/bash $out/bin/bash && ln -s bash $out/bin/sh" ]; } "synthetic-bash-${salt}";
  partList = builtins.genList part parts;
in
sh {
  args = [ "-c" "mkdir -p $out/sw/bin && ln -s ${shell}/bin/sh $out/sw/bin/sh && echo ${toString partList} > $out/parts && echo '#!/bin/sh' > $out/init && if [ -n \"$bootLink\" ]; then ln -s \"$bootLink\" $out/boot.json; fi" ];
  inherit bootLink;
} "synthetic-system-${salt}"
