//! Who a client is, by its certificate: the name `use_identity_as_username` (the subject's
//! Common Name) or `use_subject_as_username` (the whole subject) makes its user name.
//!
//! rustls checks that a client certificate is signed by a trusted authority, but does not
//! show the names in it; RustCrypto's `x509-cert` decodes them. The whole subject is printed
//! as OpenSSL prints it for Mosquitto (RFC 2253 style, last component first), so that an
//! `acl_file` written for Mosquitto names the same users here.

use rustls::pki_types::CertificateDer;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::Name;
use x509_cert::Certificate;

/// What a client certificate says about who the client is, as Mosquitto's `handle__connect`
/// (`src/handle_connect.c`) derives it:
///
/// - `whole_subject` false (`use_identity_as_username`): the subject's first Common Name
///   (`CN`), its bytes taken as they are. Mosquitto refuses the client (CONNACK 0x04) when
///   there is no CN or it holds a NUL byte; here both give `None`.
/// - `whole_subject` true (`use_subject_as_username`): the whole subject printed as OpenSSL's
///   `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it, last component first:
///   `CN=sensor-7,O=Example,C=GB` for a certificate made with
///   `-subj "/C=GB/O=Example/CN=sensor-7"`.
///
/// Mosquitto takes `use_identity_as_username` when both are set. The caller uses the
/// answer as the user name in place of CONNECT's, drops CONNECT's user name and password,
/// and does not consult the password file; the ACL still applies, to this name.
///
/// `None` also when the certificate cannot be decoded, the name is empty (Mosquitto would
/// take the empty string), or is not UTF-8 (a user name is a UTF-8 string, §1.5.3), or uses
/// a string type this printer leaves out (see `print_value`): no name means no entry.
pub fn identity(cert: &CertificateDer<'_>, whole_subject: bool) -> Option<String> {
    let cert = Certificate::from_der(cert.as_ref()).ok()?;
    let subject = cert.tbs_certificate().subject();
    let name = if whole_subject {
        rfc2253(subject)?
    } else {
        common_name(subject)?
    };
    Some(name).filter(|name| !name.is_empty())
}

/// The object identifier of the Common Name attribute (X.520 `id-at-commonName`).
const COMMON_NAME: &str = "2.5.4.3";

/// The value of the first CN in `subject`, in the order the certificate holds them, as
/// OpenSSL's `X509_NAME_get_index_by_NID(name, NID_commonName, -1)` finds it. Its bytes are
/// taken as they are, whatever the string type, as Mosquitto takes them.
fn common_name(subject: &Name) -> Option<String> {
    let cn = subject
        .iter()
        .find(|atv| atv.oid.to_string() == COMMON_NAME)?;
    let bytes = cn.value.value();
    // Mosquitto: "Make sure there isn't an embedded NUL character in the CN". A CN of
    // "admin\0.example.com" must not become the user "admin".
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// `subject` as `X509_NAME_print_ex` prints it with `XN_FLAG_RFC2253`: components last
/// first, separated by `,` (the parts of one multi-valued component by `+`), each as
/// `short name=value`.
fn rfc2253(subject: &Name) -> Option<String> {
    // One entry per attribute with the index of its component, so that a multi-valued
    // component (`CN=a+UID=b`) can be joined with `+` instead of `,`.
    let mut attributes: Vec<(usize, &AttributeTypeAndValue)> = Vec::new();
    for (index, component) in subject.iter_rdn().enumerate() {
        attributes.extend(component.iter().map(|atv| (index, atv)));
    }
    let mut out = String::new();
    let mut previous = None;
    for (index, atv) in attributes.into_iter().rev() {
        if let Some(previous) = previous {
            out.push(if previous == index { '+' } else { ',' });
        }
        previous = Some(index);
        print_attribute(&mut out, atv)?;
    }
    Some(out)
}

/// One `type=value`. A type OpenSSL has a short name for is printed by it, its value as
/// text; any other type is printed as its dotted number, and its value as `#` and the hex
/// of its DER encoding (RFC 2253 §2.4), as OpenSSL's `XN_FLAG_DUMP_UNKNOWN_FIELDS` does.
fn print_attribute(out: &mut String, atv: &AttributeTypeAndValue) -> Option<()> {
    let oid = atv.oid.to_string();
    match short_name(&oid) {
        Some(name) => {
            out.push_str(name);
            out.push('=');
            print_value(out, atv)
        }
        None => {
            out.push_str(&oid);
            out.push('=');
            print_der(out, atv)
        }
    }
}

/// OpenSSL's short names for the attribute types a subject may hold (from its
/// `objects.txt`), checked against `openssl x509 -noout -subject -nameopt RFC2253`
/// (OpenSSL 3.0). OpenSSL knows more object identifiers than these; a certificate using
/// one of the others is printed by number here, by name there.
fn short_name(oid: &str) -> Option<&'static str> {
    let name = match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.14" => "searchGuide",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.19" => "physicalDeliveryOfficeName",
        "2.5.4.20" => "telephoneNumber",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.51" => "houseIdentifier",
        "2.5.4.54" => "dmdName",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    };
    Some(name)
}

/// The value of a known attribute type, as OpenSSL prints each string type:
///
/// - UTF8String: its bytes as they are (OpenSSL does not decode them).
/// - PrintableString, IA5String, TeletexString and the other one-byte types: each byte
///   is a character (Latin-1), written in UTF-8.
/// - BMPString: two bytes per character (UCS-2), written in UTF-8.
/// - anything else (an INTEGER, a SEQUENCE): `#` and its DER encoding in hex.
///
/// Every byte written then goes through `push_escaped`. Simplified: a BMPString holding
/// half a surrogate pair gives `None` where OpenSSL prints the half anyway, and a
/// UniversalString (four bytes per character, long deprecated) is not decoded by
/// `x509-cert` at all, so a certificate with one has no identity here.
fn print_value(out: &mut String, atv: &AttributeTypeAndValue) -> Option<()> {
    let bytes = atv.value.value();
    // Each character as the bytes it is written as.
    let characters: Vec<Vec<u8>> = match atv.value.tag() {
        Tag::Utf8String => bytes.iter().map(|&byte| vec![byte]).collect(),
        Tag::NumericString
        | Tag::PrintableString
        | Tag::TeletexString
        | Tag::Ia5String
        | Tag::UtcTime
        | Tag::GeneralizedTime
        | Tag::VisibleString => bytes
            .iter()
            .map(|&byte| utf8(u32::from(byte)))
            .collect::<Option<_>>()?,
        Tag::BmpString => bytes
            .chunks(2)
            .map(|pair| utf8(u32::from(u16::from_be_bytes(pair.try_into().ok()?))))
            .collect::<Option<_>>()?,
        _ => return print_der(out, atv),
    };
    let last = characters.len().saturating_sub(1);
    for (i, encoded) in characters.iter().enumerate() {
        let position = match i {
            _ if i == last => Position::Last,
            0 => Position::First,
            _ => Position::Middle,
        };
        for &byte in encoded {
            push_escaped(out, byte, position);
        }
    }
    Some(())
}

/// The UTF-8 bytes of the character `c`; `None` if it is not one (half a surrogate pair).
fn utf8(c: u32) -> Option<Vec<u8>> {
    char::from_u32(c).map(|c| c.to_string().into_bytes())
}

/// Where a character stands in its value, for the escapes RFC 2253 asks only at the ends.
/// A value of one character counts as last, as in OpenSSL (so a lone `#` is not escaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    First,
    Middle,
    Last,
}

/// Writes one byte of a value as `XN_FLAG_RFC2253` has OpenSSL write it: a backslash
/// before `,` `+` `"` `\` `<` `>` `;` anywhere, before a space or `#` that starts the
/// value and a space that ends it (RFC 2253 §2.4), and `\XX` in hex for control
/// characters and for every byte of a non-ASCII character (`é` is `\C3\A9`). So the
/// name is always plain ASCII, whatever the certificate holds.
fn push_escaped(out: &mut String, byte: u8, position: Position) {
    let special = matches!(byte, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
        || (position == Position::First && matches!(byte, b' ' | b'#'))
        || (position == Position::Last && byte == b' ');
    if !byte.is_ascii() || byte.is_ascii_control() {
        out.push_str(&format!("\\{byte:02X}"));
    } else if special {
        out.push('\\');
        out.push(char::from(byte));
    } else {
        out.push(char::from(byte));
    }
}

/// `#` and the hex of the value's whole DER encoding (tag, length, contents), as RFC 2253
/// §2.4 writes a value whose type is not known to be text.
fn print_der(out: &mut String, atv: &AttributeTypeAndValue) -> Option<()> {
    let der = atv.value.to_der().ok()?;
    out.push('#');
    for byte in der {
        out.push_str(&format!("{byte:02X}"));
    }
    Some(())
}

// ---------------------------------------------------------------------------------------
// Tests. The certificates are made afresh by `tests/common/certs.rs` (shared with the
// integration tests, hence the path), so no private key is kept in the repository.

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    use super::*;

    /// A self-signed certificate whose subject holds `attributes`, in this order.
    fn certificate_with(attributes: Vec<(DnType, DnValue)>) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for (attribute, value) in attributes {
            params.distinguished_name.push(attribute, value);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn utf8(text: &str) -> DnValue {
        DnValue::Utf8String(text.to_owned())
    }

    #[test]
    fn the_test_client_is_named_by_its_common_name_or_its_whole_subject() {
        // As `tests/common/certs.rs` makes the test client's certificate.
        let cert = certificate_with(vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("GB".try_into().unwrap()),
            ),
            (DnType::OrganizationName, utf8("Example")),
            (DnType::CommonName, utf8("sensor-7")),
        ]);
        assert_eq!(identity(&cert, false).as_deref(), Some("sensor-7"));
        assert_eq!(
            identity(&cert, true).as_deref(),
            Some("CN=sensor-7,O=Example,C=GB")
        );
    }

    #[test]
    fn a_subject_escapes_what_rfc_2253_reserves_as_openssl_does() {
        let cert = certificate_with(vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("GB".try_into().unwrap()),
            ),
            (DnType::OrganizationName, utf8(" lead, and trail ")),
            (
                DnType::OrganizationalUnitName,
                utf8("#hash+plus\"q\\b<l>g;s=e"),
            ),
            // One character is "last", so a lone `#` is not escaped.
            (DnType::CommonName, utf8("#")),
        ]);
        let expected = r#"CN=#,OU=\#hash\+plus\"q\\b\<l\>g\;s=e,O=\ lead\, and trail\ ,C=GB"#;
        assert_eq!(identity(&cert, true).as_deref(), Some(expected));
        assert_eq!(identity(&cert, false).as_deref(), Some("#"));
    }

    #[test]
    fn a_subject_writes_other_bytes_in_hex_and_unknown_types_as_der() {
        let email = DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]);
        let uid = DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]);
        let unknown = DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]);
        let cert = certificate_with(vec![
            (DnType::OrganizationName, utf8("Zo\u{eb} Ltd")),
            // UCS-2: "Zoë ☺", written as UTF-8 and then in hex, byte by byte.
            (
                DnType::LocalityName,
                DnValue::BmpString("Zo\u{eb} \u{263a}".try_into().unwrap()),
            ),
            (
                DnType::StateOrProvinceName,
                DnValue::Ia5String("tab\there".try_into().unwrap()),
            ),
            (unknown, utf8("x")),
            (uid, utf8("uid-7")),
            (email, DnValue::Ia5String("a@b.example".try_into().unwrap())),
            (DnType::CommonName, utf8(" ")),
        ]);
        let expected = concat!(
            r"CN=\ ,emailAddress=a@b.example,UID=uid-7,1.3.6.1.4.1.99999.1=#0C0178,",
            r"ST=tab\09here,L=Zo\C3\AB \E2\98\BA,O=Zo\C3\AB Ltd"
        );
        assert_eq!(identity(&cert, true).as_deref(), Some(expected));
    }

    #[test]
    fn a_common_name_that_mosquitto_refuses_gives_no_identity() {
        // No CN at all: Mosquitto answers CONNACK 0x04. The subject is still a name.
        let cert = certificate_with(vec![(DnType::OrganizationName, utf8("Example"))]);
        assert_eq!(identity(&cert, false), None);
        assert_eq!(identity(&cert, true).as_deref(), Some("O=Example"));
        // A NUL inside: "admin\0.evil" must not pass for anyone.
        let cert = certificate_with(vec![(DnType::CommonName, utf8("admin\0.evil"))]);
        assert_eq!(identity(&cert, false), None);
        // A BMPString "sensor" is 00 73 00 65 …, NUL bytes to Mosquitto, which takes
        // the bytes as they are; its whole subject is still printable.
        let bmp = DnValue::BmpString("sensor".try_into().unwrap());
        let cert = certificate_with(vec![(DnType::CommonName, bmp)]);
        assert_eq!(identity(&cert, false), None);
        assert_eq!(identity(&cert, true).as_deref(), Some("CN=sensor"));
    }

    #[test]
    fn an_empty_subject_or_bytes_that_are_no_certificate_give_no_identity() {
        let cert = certificate_with(Vec::new());
        assert!(
            Certificate::from_der(cert.as_ref()).is_ok(),
            "a certificate, but nameless"
        );
        assert_eq!(identity(&cert, true), None);
        assert_eq!(identity(&cert, false), None);
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(identity(&junk, true), None);
        assert_eq!(identity(&junk, false), None);
    }
}
