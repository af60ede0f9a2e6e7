//! The kernel's module signature (DESIGN.md section 6), byte-identical to
//! `scripts/sign-file sha256 KEY CERT MODULE`: the module, a DER PKCS#7 SignedData
//! (sha256, detached, no certificates, one SignerInfo v1 by issuer and serial, no signed
//! attributes, RSA PKCS#1 v1.5 over SHA-256 of the module), a 12-byte trailer and the magic.
//! RustCrypto's `cms` builder always adds signed attributes, which the kernel rejects, so
//! the structures are assembled here.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use std::path::Path;

pub const MAGIC: &[u8] = b"~Module signature appended~\n";
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `PKEY_ID_PKCS7` in `struct module_signature`.
const ID_PKCS7: u8 = 2;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// The signed module: `module` followed by the signature block.
pub fn sign(module: &[u8], key_pem: &str, cert_bytes: &[u8]) -> Result<Vec<u8>> {
    if module.ends_with(MAGIC) {
        return Err(BenchError::usage("the module is already signed")
            .hint("sign the unsigned .ko (strip the old signature with `strip --strip-debug` or rebuild)"));
    }
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem))
        .or_usage("the key is not an unencrypted RSA private key in PEM")?;
    let cert = if cert_bytes.starts_with(b"-----BEGIN") {
        x509_cert::Certificate::from_pem(cert_bytes)
    } else {
        x509_cert::Certificate::from_der(cert_bytes)
    }
    .or_usage("the certificate is not X.509 (PEM or DER)")?;
    let issuer = cert.tbs_certificate.issuer.to_der().or_env("cannot encode the issuer")?;
    let serial = cert.tbs_certificate.serial_number.to_der().or_env("cannot encode the serial")?;

    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let signature = signer.try_sign(module).or_env("RSA signing failed")?.to_vec();

    let sha256_alg = seq(&[&tlv(0x06, OID_SHA256)]);
    let rsa_alg = seq(&[&tlv(0x06, OID_RSA), &[0x05, 0x00]]);
    let signer_info =
        seq(&[&tlv(0x02, &[1]), &seq(&[&issuer, &serial]), &sha256_alg, &rsa_alg, &tlv(0x04, &signature)]);
    let signed_data =
        seq(&[&tlv(0x02, &[1]), &tlv(0x31, &sha256_alg), &seq(&[&tlv(0x06, OID_DATA)]), &tlv(0x31, &signer_info)]);
    let content_info = seq(&[&tlv(0x06, OID_SIGNED_DATA), &tlv(0xa0, &signed_data)]);

    let mut out = module.to_vec();
    out.extend_from_slice(&content_info);
    out.extend_from_slice(&[0, 0, ID_PKCS7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(content_info.len() as u32).to_be_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Reads the inputs of `bench sign-module`.
pub fn sign_files(module: &Path, key: &Path, cert: &Path) -> Result<Vec<u8>> {
    let read = |p: &Path| std::fs::read(p).or_usage(format!("cannot read {}", p.display()));
    let module_bytes = read(module)?;
    if !module_bytes.starts_with(b"\x7fELF") {
        return Err(BenchError::usage(format!("{} is not an ELF kernel module", module.display())));
    }
    let key_pem =
        String::from_utf8(read(key)?).map_err(|_| BenchError::usage(format!("{} is not a PEM key", key.display())))?;
    sign(&module_bytes, &key_pem, &read(cert)?)
}
