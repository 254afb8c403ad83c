//! rustls client configuration (ring provider): the system's roots or a CA file, an optional
//! client certificate and key, verification on unless `tls_verify = false`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::OutputConfig;
use crate::DeliveryError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration an output's `tls_*` keys describe.
pub fn client_config(cfg: &OutputConfig) -> Result<Arc<ClientConfig>, DeliveryError> {
    let tls_err = |what: String| DeliveryError::Tls(what);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = if cfg.tls_verify == Some(false) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &cfg.tls_ca_file {
            Some(ca) => {
                for c in
                    CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(format!("{ca}: {e}")))?
                {
                    let c = c.map_err(|e| tls_err(format!("{ca}: {e}")))?;
                    roots.add(c).map_err(|e| tls_err(format!("{ca}: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(tls_err(format!("{ca}: no certificate in the file")));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(format!("{key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_err(format!("client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, DeliveryError> {
    let v: Result<Vec<_>, _> = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| DeliveryError::Tls(format!("{path}: {e}")))?
        .collect();
    v.map_err(|e| DeliveryError::Tls(format!("{path}: {e}")))
}

/// The name to check the server's certificate against.
pub fn server_name(cfg: &OutputConfig, host: &str) -> Result<ServerName<'static>, DeliveryError> {
    let name = cfg.tls_server_name.as_deref().unwrap_or(host).to_string();
    ServerName::try_from(name.clone())
        .map_err(|e| DeliveryError::Tls(format!("server name {name:?}: {e}")))
}

/// `tls_verify = false`: any certificate (signatures still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
