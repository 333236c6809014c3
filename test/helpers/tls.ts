// Certificates for TLS tests, made by openssl in a temp folder: a CA, a server certificate for
// 127.0.0.1/localhost and a client certificate, both signed by the CA; plus a client certificate from
// another CA (which an mTLS server must refuse).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  strangerCert: string;
  strangerKey: string;
  read(file: string): Buffer;
}

const openssl = (dir: string, ...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
const KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function ca(dir: string, name: string): void {
  openssl(dir, "req", "-x509", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`);
}

function signed(dir: string, name: string, caName: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, "req", ...KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.crt`, "-CAkey", `${caName}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`);
}

export function makeCerts(dir: string): TestCerts {
  ca(dir, "ca");
  ca(dir, "other-ca");
  signed(dir, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  signed(dir, "client", "ca", "extendedKeyUsage=clientAuth\n");
  signed(dir, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
  const f = (name: string) => path.join(dir, name);
  return {
    dir,
    caCert: f("ca.crt"),
    serverCert: f("server.crt"),
    serverKey: f("server.key"),
    clientCert: f("client.crt"),
    clientKey: f("client.key"),
    strangerCert: f("stranger.crt"),
    strangerKey: f("stranger.key"),
    read: (file) => readFileSync(file),
  };
}
