//! The TLS and QUIC configuration (SPEC.md §20.2): TLS 1.3 only, the aws-lc-rs provider with
//! X25519MLKEM768 as the only key exchange group, ALPN `hearsay/1`, an ephemeral self-signed
//! certificate per endpoint, and no certificate validation: the identity proof (§20.3) replaces
//! it.

use crate::config::TransportConfig;
use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::fmt;
use std::sync::Arc;

/// The ALPN protocol id both sides must offer (`hearsay/1`).
pub const ALPN: &[u8] = b"hearsay/1";

/// The TLS server name every dialer sends. Certificates are not validated against it (the
/// identity proof authenticates the peer); it only has to be a valid DNS name.
pub(crate) const SERVER_NAME: &str = "hearsay.invalid";

/// Why the TLS configuration could not be built.
#[derive(Debug)]
pub struct TlsSetupError(String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot build the TLS configuration: {}", self.0)
    }
}

impl std::error::Error for TlsSetupError {}

fn setup_err(e: impl fmt::Display) -> TlsSetupError {
    TlsSetupError(e.to_string())
}

/// The rustls crypto provider hearsay uses: aws-lc-rs, TLS 1.3 cipher suites only, and the
/// hybrid post-quantum group X25519MLKEM768 as the only key exchange.
pub fn crypto_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768];
    provider
        .cipher_suites
        .retain(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls13(_)));
    provider
}

/// Accepts any certificate (the identity proof authenticates the peer, SPEC.md §20.3) but still
/// checks the TLS 1.3 handshake signature, so the peer must hold the certificate's key.
#[derive(Debug)]
struct ProofReplacesCertificates {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ProofReplacesCertificates {
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
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The QUIC client and server configurations of one endpoint.
pub(crate) struct QuicConfigs {
    pub client: quinn::ClientConfig,
    pub server: quinn::ServerConfig,
}

impl fmt::Debug for QuicConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuicConfigs")
    }
}

/// The QUIC transport parameters of every hearsay connection: one unidirectional stream per
/// direction, no bidirectional streams, no datagrams, bounded flow-control windows.
pub(crate) fn transport_config(
    cfg: &TransportConfig,
) -> Result<quinn::TransportConfig, TlsSetupError> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(1u32.into())
        .stream_receive_window(quinn::VarInt::from_u32(cfg.stream_receive_window))
        .receive_window(quinn::VarInt::from_u32(cfg.connection_receive_window))
        .send_window(u64::from(cfg.send_window))
        .datagram_receive_buffer_size(None)
        .keep_alive_interval(cfg.keep_alive_interval)
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(cfg.idle_timeout).map_err(setup_err)?,
        ));
    Ok(t)
}

/// Builds the client and server configurations with a fresh self-signed certificate.
pub(crate) fn quic_configs(cfg: &TransportConfig) -> Result<QuicConfigs, TlsSetupError> {
    let provider = Arc::new(crypto_provider());
    let transport = Arc::new(transport_config(cfg)?);

    let certified =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()]).map_err(setup_err)?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(setup_err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(setup_err)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption: every connection runs a full handshake (and a fresh identity proof).
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    server.max_early_data_size = 0;
    let server_crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(server).map_err(setup_err)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    server.migration(false);

    let verifier = ProofReplacesCertificates {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(setup_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    client.enable_early_data = false;
    let client_crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client).map_err(setup_err)?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);

    Ok(QuicConfigs { client, server })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_x25519mlkem768_and_tls13_suites_are_offered() {
        let p = crypto_provider();
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, vec![rustls::NamedGroup::X25519MLKEM768]);
        assert!(!p.cipher_suites.is_empty());
        assert!(
            p.cipher_suites
                .iter()
                .all(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)))
        );
    }

    #[test]
    fn configs_build() {
        quic_configs(&TransportConfig::default()).unwrap();
    }
}
