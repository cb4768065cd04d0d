#!/usr/bin/env python3
"""libsteno.so links the TLS backend it was configured with, and exports only the public API.

Usage: check_backend.py mbedtls|openssl LIBSTENO_SO

mbedtls: libwebsockets is inside libsteno (no libwebsockets/libssl in NEEDED, libmbedtls is), and
none of its symbols leave the library (an application may link its own lws or OpenSSL beside it).
openssl: the system libwebsockets is NEEDED.
"""
import re
import subprocess
import sys


def main() -> int:
    backend, lib = sys.argv[1], sys.argv[2]
    dyn = subprocess.run(["readelf", "-d", lib], check=True, capture_output=True, text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    syms = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                          text=True).stdout.split("\n")
    exported = [line.split()[-1] for line in syms if line.strip()]
    foreign = [s for s in exported if not re.match(r"steno_[a-z]", s) and s != "STENO_0"]
    print(f"{lib}: NEEDED {', '.join(needed)}")
    print(f"{len(exported)} exported symbols, {len(foreign)} outside the public API")
    ok = True
    if foreign:
        print("exported but not public: " + " ".join(foreign[:20]))
        ok = False
    has = lambda prefix: any(n.startswith(prefix) for n in needed)  # noqa: E731
    if backend == "mbedtls":
        if not has("libmbedtls.so"):
            print("libmbedtls is not NEEDED: the mbedTLS backend is not linked")
            ok = False
        for bad in ("libwebsockets.so", "libssl.so", "libcrypto.so"):
            if has(bad):
                print(f"{bad} is NEEDED: the mbedTLS build must not link it")
                ok = False
    else:
        if not has("libwebsockets.so"):
            print("the system libwebsockets is not NEEDED")
            ok = False
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
