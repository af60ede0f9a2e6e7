//! The kernel's module signature (DESIGN.md section 6), byte-identical to
//! `scripts/sign-file sha256 KEY CERT MODULE`: the module, a DER PKCS#7 SignedData
//! (sha256, detached, no certificates, one SignerInfo v1 by issuer and serial, no signed
//! attributes, RSA PKCS#1 v1.5 over SHA-256 of the module), a 12-byte trailer and the magic.
//! RustCrypto's `cms` builder always adds signed attributes, which the kernel rejects, so
//! the structures are assembled here.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use der::{Decode, DecodePem, Encode};
use rsa::pkcs8::DecodePublicKey;
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

/// The first PEM block of one of `labels` in `text` (a file may hold a key and a
/// certificate, as the kernel's certs/signing_key.pem does).
fn pem_block<'a>(text: &'a str, labels: &[&str]) -> Option<&'a str> {
    labels
        .iter()
        .filter_map(|label| {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let a = text.find(&begin)?;
            let b = text[a..].find(&end)? + a + end.len();
            Some((a, &text[a..b]))
        })
        .min_by_key(|(a, _)| *a)
        .map(|(_, block)| block)
}

/// The RSA private key of a PEM file: PKCS#8, PKCS#1, or encrypted PKCS#8 with `pin`
/// (KBUILD_SIGN_PIN, as sign-file reads it).
fn private_key(text: &str, pin: Option<&str>) -> Result<rsa::RsaPrivateKey> {
    use rsa::pkcs8::DecodePrivateKey;
    if let Some(block) = pem_block(text, &["ENCRYPTED PRIVATE KEY"]) {
        let Some(pin) = pin else {
            return Err(BenchError::usage("the key is encrypted and KBUILD_SIGN_PIN is not set")
                .hint("export KBUILD_SIGN_PIN=<passphrase>, as for scripts/sign-file"));
        };
        return rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(block, pin)
            .or_usage("cannot decrypt the key with KBUILD_SIGN_PIN (wrong passphrase, or not an RSA key)");
    }
    if let Some(block) = pem_block(text, &["PRIVATE KEY"]) {
        return rsa::RsaPrivateKey::from_pkcs8_pem(block).or_usage("the PRIVATE KEY block is not an RSA key");
    }
    if let Some(block) = pem_block(text, &["RSA PRIVATE KEY"]) {
        if block.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(BenchError::usage("the key is encrypted in OpenSSL's old PKCS#1 form")
                .hint("convert it: openssl pkcs8 -topk8 -in KEY -out KEY8.pem (then KBUILD_SIGN_PIN)"));
        }
        use rsa::pkcs1::DecodeRsaPrivateKey;
        return rsa::RsaPrivateKey::from_pkcs1_pem(block).or_usage("the RSA PRIVATE KEY block does not parse");
    }
    Err(BenchError::usage("no private key in the key file")
        .hint("a PEM file with -----BEGIN PRIVATE KEY----- (PKCS#8), RSA PRIVATE KEY or ENCRYPTED PRIVATE KEY"))
}

/// The signed module: `module` followed by the signature block.
pub fn sign(module: &[u8], key_pem: &str, cert_bytes: &[u8]) -> Result<Vec<u8>> {
    if module.ends_with(MAGIC) {
        return Err(BenchError::usage("the module is already signed")
            .hint("sign the unsigned .ko (strip the old signature with `strip --strip-debug` or rebuild)"));
    }
    let key = private_key(key_pem, std::env::var("KBUILD_SIGN_PIN").ok().as_deref())?;
    let cert_pem_block = std::str::from_utf8(cert_bytes).ok().and_then(|t| pem_block(t, &["CERTIFICATE"]));
    if cert_pem_block.is_none() && cert_bytes.starts_with(b"-----BEGIN") {
        return Err(BenchError::usage("no certificate in the PEM file given for it")
            .hint("pass --cert CERT.pem (or a key file that holds the certificate too, like certs/signing_key.pem)"));
    }
    let cert = match cert_pem_block {
        Some(block) => x509_cert::Certificate::from_pem(block.as_bytes()),
        None => x509_cert::Certificate::from_der(cert_bytes),
    }
    .or_usage("the certificate is not X.509 (PEM, alone or after the key as in certs/signing_key.pem, or DER)")?;
    // A kernel refuses a signature by a key that is not the certificate's.
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().or_env("cannot encode the certificate's key")?;
    let cert_key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .or_usage("the certificate's key is not RSA (sign-file's sha256 signatures are RSA here)")?;
    if cert_key != key.to_public_key() {
        return Err(BenchError::usage("the private key does not match the certificate")
            .hint("pass the key the certificate was made for (a kernel would refuse the module); certs/signing_key.pem holds both"));
    }
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
