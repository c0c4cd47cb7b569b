"""certs.py - a CA and certificates for the TLS tests, made with certtool
(gnutls-bin) or, without it, openssl, in a directory the test owns.

Certs(dir).ca("main") makes a CA; .cert("main", "node") a certificate and
key it signs, valid for a year, usable as server and client; expired=True
makes one that expired in 2020. Each returns the paths. No name checks are
made by kvfs (members are members by the CA), so the certificates carry
no host names. None of this is a secret worth keeping: the directory goes
with the test."""
import os
import shutil
import subprocess


class Unavailable(Exception):
    pass


def _run(args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, **kw)


class Certs:
    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.tool = ("certtool" if shutil.which("certtool") else
                     "openssl" if shutil.which("openssl") else None)
        if not self.tool:
            raise Unavailable("neither certtool (gnutls-bin) nor openssl")

    def path(self, name):
        return os.path.join(self.root, name)

    def _key(self, name):
        key = self.path(name + ".key")
        if self.tool == "certtool":
            _run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                  "--outfile", key])
        else:
            _run(["openssl", "ecparam", "-name", "prime256v1", "-genkey",
                  "-noout", "-out", key])
        os.chmod(key, 0o600)
        return key

    def _template(self, name, lines):
        t = self.path(name + ".tmpl")
        with open(t, "w") as f:
            f.write("\n".join(lines) + "\n")
        return t

    def ca(self, name):
        """(cert, key) of a new CA called name."""
        key = self._key(name + "-ca")
        crt = self.path(name + "-ca.pem")
        if self.tool == "certtool":
            t = self._template(name + "-ca", ['cn = "%s CA"' % name, "ca",
                                              "cert_signing_key",
                                              "expiration_days = 3650"])
            _run(["certtool", "--generate-self-signed", "--load-privkey",
                  key, "--template", t, "--outfile", crt])
        else:
            _run(["openssl", "req", "-x509", "-new", "-key", key, "-out", crt,
                  "-days", "3650", "-subj", "/CN=%s CA" % name,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return crt, key

    def cert(self, ca, name, expired=False):
        """(cert, key) of a certificate called name, signed by CA ca (a
        name given to ca()), for servers and clients."""
        ca_crt, ca_key = self.path(ca + "-ca.pem"), self.path(ca + "-ca.key")
        key = self._key(name)
        crt = self.path(name + ".pem")
        if self.tool == "certtool":
            dates = (['activation_date = "2020-01-01 00:00:00 UTC"',
                      'expiration_date = "2020-06-01 00:00:00 UTC"']
                     if expired else ["expiration_days = 365"])
            t = self._template(name, ['cn = "%s"' % name, "tls_www_server",
                                      "tls_www_client", "signing_key"] + dates)
            _run(["certtool", "--generate-certificate", "--load-privkey", key,
                  "--load-ca-certificate", ca_crt, "--load-ca-privkey",
                  ca_key, "--template", t, "--outfile", crt])
        else:
            csr = self.path(name + ".csr")
            _run(["openssl", "req", "-new", "-key", key, "-out", csr,
                  "-subj", "/CN=%s" % name])
            ext = self._template(name + "-ext", [
                "extendedKeyUsage=serverAuth,clientAuth",
                "keyUsage=critical,digitalSignature"])
            args = ["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt,
                    "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                    "-extfile", ext]
            if expired:
                # openssl x509 cannot date a certificate in the past: the
                # "ca" command can (-startdate/-enddate)
                raise Unavailable("an expired certificate needs certtool")
            _run(args + ["-days", "365"])
        return crt, key
