"""A private certificate authority for the TLS tests, made with the openssl command line: a CA,
and certificates for given names signed by it (valid, expired, or not yet valid)."""

import subprocess


class PrivateCA:
    """A CA in `directory`; `issue()` writes a certificate chain and its key next to it."""

    def __init__(self, directory, name="vigil test CA"):
        self.directory = directory
        self.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        self.pem = directory / "ca.pem"

    def run(self, *args):
        subprocess.run(["openssl", *args], cwd=self.directory, check=True, capture_output=True)

    def issue(self, stem, names, days=2, not_before=None, not_after=None):
        """`stem`.pem (the certificate, then the CA's: a full chain) and `stem`.key for `names`
        (DNS names and IP addresses). `not_before`/`not_after` (YYYYMMDDHHMMSSZ) set the
        validity exactly, for expired or future certificates."""
        self.run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={names[0]}")
        alt = ",".join(("IP:" if name[0].isdigit() else "DNS:") + name for name in names)
        (self.directory / f"{stem}.ext").write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")
        if not_before or not_after:
            # `openssl ca` is the one that takes exact dates; a minimal database for it.
            (self.directory / "index.txt").write_text("")
            (self.directory / "ca.cnf").write_text(
                "[ca]\ndefault_ca=test\n[test]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n"
                "default_md=sha256\npolicy=any\nunique_subject=no\n[any]\ncommonName=supplied\n")
            (self.directory / "serial").write_text("1000\n")
            self.run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                     "-in", f"{stem}.csr", "-out", f"{stem}.leaf", "-notext", "-extfile", f"{stem}.ext",
                     "-startdate", not_before or "20250101000000Z", "-enddate", not_after or "20991231000000Z")
        else:
            self.run("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", f"{stem}.leaf", "-days", str(days), "-extfile", f"{stem}.ext")
        chain = self.directory / f"{stem}.pem"
        chain.write_text((self.directory / f"{stem}.leaf").read_text() + self.pem.read_text())
        return chain, self.directory / f"{stem}.key"
