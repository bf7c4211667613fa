#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bundle
short_description: Fetch and verify the SNE encryption certificate bundle
version_added: 0.1.0
description:
  - Downloads (or reads) the zip archive in which the ministry publishes a new generation of
    the SNE encryption certificate and its authority, reads it in memory with strict limits,
    and verifies it before anything is deployed.
  - The bundle is accepted only if it is authenticated, either by pinned SHA-256 fingerprints
    (O(authority_sha256), optionally O(certificate_sha256)) or by a chain to a configured
    O(trust_anchors) certificate. With neither, the module fails and prints the fingerprints
    to compare out of band (fail closed).
  - The encryption certificate must be RSA of at least 2048 bits, carry keyUsage
    keyEncipherment, not be a CA, be valid at O(valid_at), not be listed in
    O(retired_sha256), and be the only encryption certificate in the bundle. The chain is
    validated by C(cryptography.x509.verification).
  - The generation is a label, not a proof. Pins or trust anchors decide whether the bundle is
    genuine and O(retired_sha256) whether it is a retired generation. A common name that does
    not name O(generation) is only a warning (RV(generation_label_matches) is V(false)); to
    refuse a certificate by its name, set O(generation_pattern).
  - With O(crls) (or O(crl_from_distribution_points)), revocation is proven too. Each CRL
    must be signed by the authority that issued the certificate it is about (checked before
    anything it lists is read), name that authority as issuer, be current at O(valid_at)
    (thisUpdate past, nextUpdate not passed) and carry no unknown critical extension. Then the
    bundle's certificate must not be on it (else check V(revoked)), and with
    O(require_retired_revoked) the retired one must be (else V(retired_not_revoked)). What was
    found is returned in RV(revocation).
  - Every refusal names the check that failed in RV(ignore:check) (for example V(validity),
    V(chain), V(zip_path), V(crl_signature)).
  - "Runs on the controller: use it with C(delegate_to: localhost) and C(run_once: true)."
author:
  - sne.guichet developers (@sne-guichet)
requirements:
  - cryptography >= 45.0.0 (on the host that runs the module, normally the controller)
attributes:
  check_mode:
    support: full
    description: Verification runs in check mode too; nothing is written to O(cache_dir).
  diff_mode:
    support: none
    description: The module changes nothing that a diff could show.
  idempotent:
    support: full
    description: Re-running with the same bundle reports no change.
options:
  src:
    description:
      - V(https://...) or V(http://...) URL of the zip, or a path to it on the host running
        the module.
      - Plain HTTP is acceptable only because the content is authenticated by pins or anchors.
    type: str
    required: true
  checksum:
    description:
      - Expected checksum of the archive, C(algorithm:hex) as for M(ansible.builtin.get_url)
        (V(sha256), V(sha384), V(sha512)); plain hex means SHA-256.
    type: str
  certificate_sha256:
    description:
      - Pinned SHA-256 fingerprint of the encryption certificate, as printed by
        C(openssl x509 -noout -fingerprint -sha256) (colons and case do not matter).
    type: str
  authority_sha256:
    description:
      - Pinned SHA-256 fingerprints of the issuing authority (any one may match). With
        O(trust_anchors) unset, the certificate must chain to this authority.
    type: list
    elements: str
    default: []
  trust_anchors:
    description:
      - Root certificates (PEM or DER content, or paths on the host running the module) the
        bundle must chain to.
    type: list
    elements: str
    default: []
  generation:
    description:
      - Label of the generation being deployed, for example V(V5), used to name the files in
        O(cache_dir) (and by the playbooks for aliases and reports).
      - It is looked for in the encryption certificate's common name (V(V5) matches
        C(Chiffrement_SNEV5) but not C(...V50)). A common name that does not name it
        (for example C(CN=Chiffrement SNE,OU=SNE,...)) is reported as a warning and in
        RV(generation_label_matches), never refused.
    type: str
  generation_pattern:
    description:
      - Python regular expression searched (C(re.search)) in the encryption certificate's
        subject written as RFC 4514, most specific attribute first, as in
        RV(certificate.subject), for example C(CN=Chiffrement SNE,OU=SNE,O=Ministere,C=FR).
        Case matters, unless the expression starts with the inline flag (?i).
      - When set and it does not match, the bundle is refused by the check V(generation), and the
        common name warning of O(generation) is not given. Unset, the subject refuses nothing.
      - An invalid expression fails the task with RV(ignore:check) V(arguments).
    type: str
  retired_sha256:
    description:
      - Fingerprints that must never be accepted (the retired generations, e.g. V4 and its
        authority). Any of them in the bundle's chain refuses it.
    type: list
    elements: str
    default: []
  valid_at:
    description:
      - Instant at which the certificates must be valid, ISO 8601 (V(2016-01-07T09:00:00Z)),
        or V(now).
    type: str
    default: now
  min_days_remaining:
    description:
      - Warn when the encryption certificate expires in fewer days than this after O(valid_at).
    type: int
    default: 30
  validate_certs:
    description:
      - Verify the TLS certificate of an V(https://) O(src). Turning this off is reported as a
        warning; the bundle's own verification still applies.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of certificate authorities to validate the download server with, instead of
        the system's.
    type: path
  use_proxy:
    description:
      - Use the proxy given by the environment (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
  timeout:
    description: Download timeout in seconds.
    type: int
    default: 30
  max_archive_size:
    description: Largest archive accepted, in bytes.
    type: int
    default: 16777216
  max_members:
    description: Largest number of members accepted in the archive.
    type: int
    default: 64
  max_member_size:
    description: Largest uncompressed member accepted, in bytes.
    type: int
    default: 4194304
  crls:
    description:
      - The authorities' certificate revocation lists, each a V(https://...) or V(http://...) URL
        (downloaded as O(src) is, same proxy and TLS options), a path on the host running the
        module, or the PEM text itself. DER or PEM is told by the content; a PEM file may hold
        several CRLs.
      - When any is given, the bundle's certificate must be covered by a verified CRL of its
        issuing authority (else V(crl_missing)) and must not be listed on it (else V(revoked)).
      - Every CRL given must be about a certificate being checked. A CRL of another authority is
        refused (V(crl_issuer)), never ignored. A CRL signed by another key than that of the
        authority it names is refused (V(crl_signature)). A CRL not yet valid or past its
        nextUpdate is refused (V(crl_stale)). An unknown critical extension, a delta CRL or a
        partial CRL is refused (V(crl_extension)). What is not a CRL is refused (V(crl_parse)).
    type: list
    elements: str
    default: []
  crl_from_distribution_points:
    description:
      - Also download the CRLs named by the HTTP(S) cRLDistributionPoints of the certificates
        checked (the bundle's certificate, and those of O(retired_certificates)), with the same
        code and options as O(src). A download that fails refuses the bundle (RV(ignore:check)
        V(fetch)).
    type: bool
    default: false
  retired_certificates:
    description:
      - Certificates of the retired generation (PEM text, or paths to PEM or DER files), for
        example the V4 encryption certificate and its authority.
      - The encryption certificates among them are refused in the bundle as O(retired_sha256)
        are, and looked up in the CRLs (RV(revocation)). The authorities among them only
        verify the signature of their own CRLs (a new generation may come from the same
        authority).
    type: list
    elements: str
    default: []
  retired_generation:
    description:
      - Label of the retired generation, for example V(V4), in RV(revocation) and the reports.
    type: str
  require_retired_revoked:
    description:
      - Require a verified CRL of the retired encryption certificates' authority (V(crl_missing))
        on which they are listed (V(retired_not_revoked)). Needs O(retired_certificates).
    type: bool
    default: false
  cache_dir:
    description:
      - When set, the verified archive and the certificate and authority (PEM and DER) are
        written into this folder, under names derived from O(generation) and the
        fingerprints; nothing is ever written outside it, whatever the archive's member
        names say.
    type: path
notes:
  - Supports C(https_proxy) and C(no_proxy) from the environment like M(ansible.builtin.get_url).
seealso:
  - module: sne.guichet.keystores
"""

EXAMPLES = r"""
- name: Verify the V5 bundle against the pins published by the ministry
  sne.guichet.bundle:
    src: http://sne.example.org/Chiffrement_SNEV5.zip
    generation: V5
    certificate_sha256: "{{ sne_certificate_sha256 }}"
    authority_sha256: ["{{ sne_authority_sha256 }}"]
    retired_sha256: "{{ sne_retired_sha256 }}"
  delegate_to: localhost
  run_once: true
  register: sne_bundle

- name: Verify a local copy against the ministry's root instead of pins
  sne.guichet.bundle:
    src: /srv/sne/Chiffrement_SNEV5.zip
    trust_anchors:
      - /etc/sne/racine-ministere.pem
    generation: V5
    valid_at: "2016-01-07T09:00:00Z"
  delegate_to: localhost
  run_once: true
  register: sne_bundle

- name: Require the subject form the ministry announced for V5, whatever its common name says
  sne.guichet.bundle:
    src: /srv/sne/Chiffrement_SNEV5.zip
    authority_sha256: ["{{ sne_authority_sha256 }}"]
    certificate_sha256: "{{ sne_certificate_sha256 }}"
    generation: V5
    generation_pattern: '^CN=Chiffrement SNE,OU=SNE,'
  delegate_to: localhost
  run_once: true
  register: sne_bundle

- name: Prove that V5 is not revoked and V4 is, by the authorities' CRLs
  sne.guichet.bundle:
    src: /srv/sne/Chiffrement_SNEV5.zip
    authority_sha256: ["{{ sne_authority_sha256 }}"]
    generation: V5
    crls:
      - http://crl.sne.example.org/ac-sne-v5.crl
      - /srv/sne/ac-sne-v4.crl
    retired_certificates:
      - /srv/sne/Chiffrement_SNEV4.pem
      - /srv/sne/AC_SNE_V4.pem
    retired_generation: V4
    require_retired_revoked: true
  delegate_to: localhost
  run_once: true
  register: sne_bundle

- name: Show what will be deployed
  ansible.builtin.debug:
    msg: "{{ sne_bundle.certificate.subject }} {{ sne_bundle.certificate.sha256 }}"
"""

RETURN = r"""
certificate:
  description: The encryption certificate.
  returned: success
  type: dict
  contains:
    pem:
      description: The certificate, PEM.
      type: str
      returned: success
      sample: "-----BEGIN CERTIFICATE-----\nMIID...\n-----END CERTIFICATE-----\n"
    sha256:
      description: SHA-256 fingerprint, as C(openssl x509 -fingerprint -sha256) prints it.
      type: str
      returned: success
      sample: "3A:7F:...:C2"
    subject:
      description: Subject, RFC 4514.
      type: str
      returned: success
      sample: CN=Chiffrement_SNEV5,O=Ministere,C=FR
    issuer:
      description: Issuer, RFC 4514.
      type: str
      returned: success
      sample: CN=AC SNE V5,O=Ministere,C=FR
    serial:
      description: Serial number, hexadecimal.
      type: str
      returned: success
      sample: 5E01
    not_before:
      description: Start of validity, UTC.
      type: str
      returned: success
      sample: "2016-01-01T00:00:00Z"
    not_after:
      description: End of validity, UTC.
      type: str
      returned: success
      sample: "2019-01-01T00:00:00Z"
    key_usage:
      description: Key usages.
      type: list
      elements: str
      returned: success
      sample: [key_encipherment]
    is_ca:
      description: Whether basicConstraints says CA.
      type: bool
      returned: success
      sample: false
authority:
  description: The authorities above the certificate found in the bundle, the issuing authority
    first; each has the same keys as RV(certificate).
  returned: success
  type: list
  elements: dict
  sample: [{"subject": "CN=AC SNE V5,O=Ministere,C=FR", "sha256": "9B:...:01"}]
chain:
  description: Subjects of the verified chain, from the certificate to the trust anchor.
  returned: success
  type: list
  elements: str
  sample: ["CN=Chiffrement_SNEV5", "CN=AC SNE V5", "CN=Racine"]
chain_sha256:
  description: Fingerprints of the verified chain, in the order of RV(chain).
  returned: success
  type: list
  elements: str
  sample: ["3A:7F:...:C2", "9B:...:01"]
trusted_by:
  description: What authenticated the bundle, V(trust_anchors) or V(authority_sha256).
  returned: success
  type: str
  sample: authority_sha256
days_remaining:
  description: Days from O(valid_at) to the end of the certificate's validity.
  returned: success
  type: int
  sample: 1095
archive_sha256:
  description: SHA-256 of the archive, lowercase hex.
  returned: always
  type: str
  sample: 0f3c...e1
documents:
  description: Archive members that are not certificates (the instructions).
  returned: success
  type: list
  elements: str
  sample: [Installation_certificat_SNE.pdf]
members:
  description: Archive members that held certificates.
  returned: success
  type: list
  elements: str
  sample: [Chiffrement_SNEV5.cer, AC_SNE_V5.cer]
bundle_warnings:
  description:
    - Warnings about the bundle (also shown as Ansible warnings), e.g. near expiry, or a common
      name that does not name O(generation).
  returned: success
  type: list
  elements: str
  sample: ["the encryption certificate expires in 12 days (2016-01-19T00:00:00Z)"]
generation_label_matches:
  description:
    - Whether the encryption certificate's common name names O(generation); V(null) when
      O(generation) is unset.
    - V(false) is a warning (in RV(bundle_warnings) unless O(generation_pattern) is set), never
      a refusal.
  returned: success
  type: bool
  sample: false
check:
  description:
    - On failure, the name of the check that refused the bundle (V(generation) when the subject
      does not match O(generation_pattern), V(revoked) when a CRL lists the bundle's
      certificate), V(fetch) when it or a CRL could not be read, or V(arguments) for an invalid
      option value.
  returned: failure
  type: str
  sample: chain
revocation:
  description:
    - What the CRLs say, one entry per certificate looked up (the bundle's, then the retired
      ones); empty when no CRL is given or required.
    - Also returned with a refusal by a revocation check.
  returned: success
  type: list
  elements: dict
  contains:
    generation:
      description: O(generation) for the bundle's certificate, O(retired_generation) for a retired one.
      type: str
      returned: success
      sample: V4
    role:
      description: V(current) (the bundle's certificate) or V(retired).
      type: str
      returned: success
      sample: retired
    subject:
      description: The certificate's subject, RFC 4514.
      type: str
      returned: success
      sample: CN=Chiffrement_SNEV4,O=Ministere,C=FR
    sha256:
      description: The certificate's SHA-256 fingerprint.
      type: str
      returned: success
      sample: "5C:0A:...:9E"
    serial:
      description: The certificate's serial number, hexadecimal.
      type: str
      returned: success
      sample: 5E1004
    authority:
      description: Common name of the issuing authority, whose CRL was read.
      type: str
      returned: success
      sample: AC SNE V4
    revoked:
      description: Whether the CRL lists it; V(null) when no CRL of its authority was given.
      type: bool
      returned: success
      sample: true
    revoked_at:
      description: Revocation date the CRL gives, ISO 8601 UTC; V(null) when not revoked.
      type: str
      returned: success
      sample: "2016-01-07T08:00:00+00:00"
    reason:
      description: The CRL's reason code, for example V(superseded); V(null) when none.
      type: str
      returned: success
      sample: superseded
    crl:
      description: The CRL that decided (its URL, path, or V(crls[N]) for PEM text).
      type: str
      returned: success
      sample: /srv/sne/ac-sne-v4.crl
    crl_this_update:
      description: Its thisUpdate, ISO 8601 UTC.
      type: str
      returned: success
      sample: "2016-01-07T08:30:00+00:00"
    crl_next_update:
      description: Its nextUpdate, ISO 8601 UTC.
      type: str
      returned: success
      sample: "2016-01-14T08:30:00+00:00"
files:
  description: Files written into O(cache_dir) (empty when it is unset or in check mode).
  returned: success
  type: dict
  sample: {"archive": "/var/cache/sne/V5-3a7f.zip", "certificate_pem": "/var/cache/sne/V5-3a7f.pem"}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sne.guichet.plugins.module_utils._bundle.run import run_bundle
from ansible_collections.sne.guichet.plugins.module_utils._common.cryptography_dep import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    cryptography_problem,
)


def main() -> None:
    argument_spec = dict(
        src=dict(type="str", required=True),
        checksum=dict(type="str"),
        certificate_sha256=dict(type="str"),
        authority_sha256=dict(type="list", elements="str", default=[]),
        trust_anchors=dict(type="list", elements="str", default=[]),
        generation=dict(type="str"),
        generation_pattern=dict(type="str"),
        retired_sha256=dict(type="list", elements="str", default=[]),
        valid_at=dict(type="str", default="now"),
        min_days_remaining=dict(type="int", default=30),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        use_proxy=dict(type="bool", default=True),
        timeout=dict(type="int", default=30),
        max_archive_size=dict(type="int", default=16 * 1024 * 1024),
        max_members=dict(type="int", default=64),
        max_member_size=dict(type="int", default=4 * 1024 * 1024),
        cache_dir=dict(type="path"),
        crls=dict(type="list", elements="str", default=[]),
        crl_from_distribution_points=dict(type="bool", default=False),
        retired_certificates=dict(type="list", elements="str", default=[]),
        retired_generation=dict(type="str"),
        require_retired_revoked=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    problem = cryptography_problem()
    if problem:
        module.fail_json(msg=missing_required_lib("cryptography >= 45.0.0") + " (%s)" % problem,
                         exception=CRYPTOGRAPHY_IMPORT_ERROR)
    run_bundle(module)


if __name__ == "__main__":
    main()
