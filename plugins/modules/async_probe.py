#!/usr/bin/python
# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_probe
short_description: Prove that the SNE accepts a message encrypted with the certificate installed on a guichet
version_added: 0.1.0
description:
  - Reads the SNE encryption certificate from where the host's guichet software takes it (a PEM
    or DER file, or an entry of a JKS or PKCS#12 keystore), checks that it is the expected
    generation, and sends the SNE a small XML test message encrypted with it, then waits for
    the asynchronous return that carries the message's id.
  - The message is C(<MessageAsynchrone id="SNEPROBE-<host>-<time>-<random>">) with
    C(<Guichet>) O(guichet_id) and C(<Type>) O(message_type), a new id on every run. It is
    encrypted as a CMS EnvelopedData with AES-256-CBC content encryption and RSA PKCS#1 v1.5
    key transport to the certificate, named by its issuer and serial number; the envelope is
    checked before it is sent.
  - Encryption uses the Python library C(cryptography) (C(PKCS7EnvelopeBuilder)) when it is
    importable on the target, else the C(openssl cms -encrypt) command; the result says which
    ran (RV(encryption)). With neither, the probe stops with an error that says to run it
    delegated to the controller with O(certificate_pem) (see EXAMPLES).
  - A return is matched by the message id only; returns of other messages (earlier probes,
    the guichet's own traffic) are ignored, so a late return of a previous run never counts.
  - Outcome in RV(status) - V(passed) (return ACCEPTE), V(rejected) (return REJETE, with
    RV(anomaly)), V(timeout) (no return within O(timeout) - what the SNE does with a message
    encrypted to a revoked or unknown certificate; never a pass), V(error) (the probe could
    not conclude, RV(msg) says why), V(skipped) (check mode).
  - The task fails unless the status is V(passed), except with O(fail_on_status=false).
  - On a fleet, O(phase=send) then O(phase=await) in two tasks lets every host of a batch send
    its message before any host waits, so the batch waits for the SNE once, not host by host
    (the role C(sne.guichet.async_check) does this). The wait of a host ends at O(sent_at) +
    O(timeout), however late it starts.
  - Where the returns reach the controller (HTTP), one O(phase=await) run on the controller with
    O(messages) waits for the whole batch's returns at once (one module run per batch, none per
    host); RV(awaited) gives each message's result.
  - A probe changes nothing on the host; the result never reports a change.
author:
  - sne.guichet developers (@sne-guichet)
requirements:
  - Python 3.8 or newer on the target; standard library only, plus either the Python library
    C(cryptography) (>= 45) or the C(openssl) command to encrypt.
  - C(keytool) or C(cryptography) on the target to read a PKCS#12 keystore whose certificates
    are encrypted.
attributes:
  check_mode:
    support: full
    description: Does not send in check mode; the status is V(skipped) and nothing is read or sent.
  diff_mode:
    support: none
    description: A probe changes nothing, there is nothing to show.
options:
  phase:
    description:
      - V(probe) - send the message and wait for its return, in one run.
      - V(send) - read and check the certificate, encrypt and send the message, and return at
        once with RV(status=sent), RV(message_id) and RV(sent_at) (no wait).
      - V(await) - wait for the return of the message O(message_id) sent at O(sent_at) over
        the same transport (nothing is read or sent; O(certificate), O(guichet_id) and the
        expectations are not needed), or of every message of O(messages). Run it where the
        returns arrive (on the host for SMTP and folder; for HTTP, anywhere that reaches the URL).
    type: str
    choices: [probe, send, await]
    default: probe
    version_added: 0.2.0
  message_id:
    description: O(phase=await) - the RV(message_id) the send returned.
    type: str
    version_added: 0.2.0
  sent_at:
    description:
      - O(phase=await) - the RV(sent_at) the send returned (seconds since the epoch, on the
        clock of the machine that sent). The wait ends at O(sent_at) + O(timeout).
    type: float
    version_added: 0.2.0
  messages:
    description:
      - O(phase=await) - instead of O(message_id) and O(sent_at), the messages of a whole batch
        (each C(message_id), C(sent_at), and optionally C(host), a label kept in the result).
      - One wait for them all; each message's wait ends at its C(sent_at) + O(timeout).
        RV(status) is V(passed) when every message passed, else the first of V(error),
        V(rejected), V(timeout) that a message has; RV(awaited) gives each one's result.
    type: list
    elements: dict
    version_added: 1.0.0
  certificate:
    description:
      - Where the guichet software reads the encryption certificate. Mutually exclusive with
        O(certificate_pem); one of them is required, except with O(phase=await).
    type: dict
    suboptions:
      path:
        description: The file (certificate or keystore) on the host.
        type: path
        required: true
      type:
        description:
          - V(pem) a PEM file (one or more certificates), V(der) a DER certificate, V(jks) a
            Java KeyStore (or JCEKS), V(pkcs12) a PKCS#12 keystore.
          - Default - guessed from the content.
        type: str
        choices: [pem, der, jks, pkcs12]
      alias:
        description:
          - For V(jks) and V(pkcs12), the alias of the entry the guichet uses (trusted
            certificate, or the first certificate of a key entry).
          - For V(pem), the common name of the certificate to use, or its position V(#0), V(#1)...
          - Default - the only certificate that is not a certificate authority; when there are
            several, the probe stops with an error listing them.
        type: str
        aliases: [name]
      password:
        description:
          - Keystore password. For V(jks) it is only used to check the store's integrity
            (certificates are readable without it); V(pkcs12) stores usually need it.
          - Never logged or returned.
        type: str
  certificate_pem:
    description:
      - The certificate itself, PEM, when it was read elsewhere - typically on the host by a
        first run of this module (RV(certificate.pem)) or M(ansible.builtin.slurp), when the
        probe runs delegated to the controller.
    type: str
  expected_sha256:
    description:
      - SHA-256 fingerprint of the certificate that must be installed (V5). Colons and case do
        not matter.
      - At least one of O(expected_sha256) and O(expected_generation) is required, except
        with O(phase=await).
    type: str
  expected_generation:
    description:
      - Generation the installed certificate must be, matched in its subject common name like
        M(sne.guichet.bundle) does (V(V5) matches C(Chiffrement_SNEV5), not C(...V50)).
    type: str
  send_anyway:
    description:
      - Send the message even when the installed certificate is not the expected one (a
        warning is issued). Used to show that the SNE does not answer a message encrypted with
        a revoked certificate (status V(timeout)).
    type: bool
    default: false
  guichet_id:
    description:
      - The guichet's identifier, the C(<Guichet>) element of the message. Required, except
        with O(phase=await).
    type: str
  message_type:
    description:
      - The C(<Type>) element of the message. V(REJET_TEST) asks the SNE for a rejection (to
        test the handling of REJETE returns).
    type: str
    default: TEST
  host_label:
    description:
      - Host part of the message id. Default - the target's short host name; pass
        the inventory host name (C(inventory_hostname)) when the probe is delegated.
    type: str
  transport:
    description: How the message goes to the SNE; the option of the same name configures it.
    type: str
    required: true
    choices: [http, smtp, folder]
  http:
    description:
      - O(transport=http) - C(POST <url>/messages) (the DER envelope), then C(GET
        <url>/returns/<message id>) until it answers (404 means not yet).
    type: dict
    suboptions:
      url:
        description: Base URL of the SNE endpoint, for example V(https://sne.example/async).
        type: str
        required: true
      validate_certs:
        description: Verify the server's TLS certificate.
        type: bool
        default: true
      ca_path:
        description: PEM file of the authorities to trust for the TLS connection.
        type: path
      use_proxy:
        description: Use the proxy of the environment (C(https_proxy), C(no_proxy)...).
        type: bool
        default: true
  smtp:
    description:
      - O(transport=smtp) - an S/MIME mail (C(application/pkcs7-mime), enveloped-data, CRLF
        line ends) to the SNE's address; the returns arrive as mails in a Maildir (read,
        never modified).
    type: dict
    suboptions:
      host:
        description: SMTP server.
        type: str
        default: localhost
      port:
        description: SMTP port.
        type: int
        default: 25
      sender:
        description: Envelope sender and From of the mail (the address the returns are sent to).
        type: str
        required: true
      recipient:
        description: The SNE's address.
        type: str
        required: true
      maildir:
        description: The Maildir where the returns for O(smtp.sender) arrive.
        type: path
        required: true
  folder:
    description:
      - O(transport=folder) - the envelope is written to O(folder.outbox) as
        C(<message id>.p7m) (a hidden temporary file renamed when complete) and the return is
        awaited as C(<inbox>/<message id>.xml).
    type: dict
    suboptions:
      outbox:
        description: Folder the SNE's side takes messages from.
        type: path
        required: true
      inbox:
        description: Folder returns are written to.
        type: path
        required: true
  timeout:
    description: Seconds to wait for the return after sending (after O(sent_at) with O(phase=await)).
    type: float
    default: 300
  poll_interval:
    description: Seconds between two looks for the return.
    type: float
    default: 2
  connect_timeout:
    description: Timeout in seconds of each HTTP request or SMTP connection.
    type: float
    default: 30
  encryption:
    description:
      - V(auto) - C(cryptography) when importable, else the C(openssl) command. V(cryptography)
        or V(openssl) forces one.
    type: str
    default: auto
    choices: [auto, cryptography, openssl]
  fail_on_status:
    description:
      - Fail the task unless the status is V(passed) (V(sent) with O(phase=send)). Set to V(false) to collect the result
        (for example in a role that reports on a whole fleet) and decide later; argument
        errors fail the task in any case.
    type: bool
    default: true
notes:
  - Returns are written by the SNE side; when the guichet software itself consumes the
    O(folder.inbox) or the Maildir, the probe may not see its return - use a folder or a
    sender address of its own.
seealso:
  - module: sne.guichet.keystores
  - module: sne.guichet.bundle
"""

EXAMPLES = r"""
- name: Prove the V5 certificate installed in the guichet's keystore works (HTTP)
  sne.guichet.async_probe:
    certificate:
      path: /opt/guichet/conf/app.jks
      type: jks
      alias: sne-chiffrement
      password: "{{ vault_app_jks }}"
    expected_sha256: "{{ sne_certificate_sha256 }}"
    expected_generation: V5
    guichet_id: G-013-0042
    transport: http
    http:
      url: https://sne.example/async
    timeout: 600
    poll_interval: 10

- name: Same over the drop folder the guichet software uses, collecting the result
  sne.guichet.async_probe:
    certificate: {path: /etc/guichet/Chiffrement_SNE.cer, type: der}
    expected_generation: V5
    guichet_id: "{{ guichet_id }}"
    transport: folder
    folder: {outbox: /var/spool/guichet/outbox, inbox: /var/spool/guichet/inbox}
    fail_on_status: false
  register: sne_probe

- name: Over SMTP, returns delivered to a Maildir
  sne.guichet.async_probe:
    certificate: {path: /etc/guichet/sne.pem, type: pem, alias: Chiffrement_SNEV5}
    expected_sha256: "{{ sne_certificate_sha256 }}"
    guichet_id: "{{ guichet_id }}"
    transport: smtp
    smtp:
      host: smtp.internal
      sender: guichet@bailleur.example
      recipient: sne@sne.example
      maildir: /var/mail/guichet/Maildir

# A host with neither the Python library cryptography nor openssl: the first run reads the
# certificate (returned as certificate.pem) and stops with code no_backend; the second encrypts
# and sends from the controller.
- name: Probe on the host
  sne.guichet.async_probe:
    certificate: {path: /opt/guichet/conf/app.jks, type: jks, alias: sne-chiffrement}
    expected_generation: V5
    guichet_id: "{{ guichet_id }}"
    transport: http
    http: {url: "{{ sne_url }}"}
    fail_on_status: false
  register: sne_probe

- name: Probe from the controller with the certificate read on the host
  sne.guichet.async_probe:
    certificate_pem: "{{ sne_probe.certificate.pem }}"
    expected_generation: V5
    host_label: "{{ inventory_hostname }}"
    guichet_id: "{{ guichet_id }}"
    transport: http
    http: {url: "{{ sne_url }}"}
  delegate_to: localhost
  when: sne_probe.code | default('') == 'no_backend'

- name: Show that a host still on V4 gets no answer (the SNE drops such messages)
  sne.guichet.async_probe:
    certificate: {path: /etc/guichet/sne.pem}
    expected_generation: V5
    send_anyway: true
    guichet_id: "{{ guichet_id }}"
    transport: http
    http: {url: "{{ sne_url }}"}
    timeout: 60
    fail_on_status: false
  register: sne_probe_v4
  failed_when: sne_probe_v4.status != 'timeout'
"""

RETURN = r"""
status:
  description:
    - V(passed) the SNE accepted the message (ACCEPTE); V(rejected) it rejected it (REJETE);
      V(timeout) no return came within O(timeout); V(error) the probe could not conclude
      (RV(code), RV(msg)); V(skipped) check mode; V(sent) (O(phase=send) only) the message was
      sent, its return is to be awaited with O(phase=await).
  returned: always
  type: str
  sample: passed
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: "message SNEPROBE-guichet01-20160107T093000Z-5f2c9a01 accepted by the SNE (generation V5) after 1.2 s"
code:
  description:
    - When RV(status) is V(error), the step that failed - V(certificate) (cannot read or select
      it), V(generation) (not the expected certificate), V(no_backend) (nothing to encrypt
      with on the host), V(encryption), V(envelope), V(send), V(return) (the return's statut is neither ACCEPTE nor REJETE).
  returned: when status is error
  type: str
  sample: generation
message_id:
  description: Id of the message sent (a new one on every run).
  returned: when a message was built
  type: str
  sample: SNEPROBE-guichet01-20160107T093000Z-5f2c9a01
message_xml:
  description: The XML message, before encryption.
  returned: when a message was built
  type: str
  sample: "<?xml version='1.0' encoding='UTF-8'?>\n<MessageAsynchrone id=\"SNEPROBE-...\" version=\"1\">...</MessageAsynchrone>\n"
certificate:
  description: The certificate read (the envelope's recipient).
  returned: when it could be read
  type: dict
  contains:
    source:
      description: Where it was read.
      type: str
      sample: /opt/guichet/conf/app.jks alias sne-chiffrement
    subject:
      description: Subject, RFC 4514.
      type: str
      sample: CN=Chiffrement_SNEV5,O=Ministere du Logement,C=FR
    issuer:
      description: Issuer, RFC 4514.
      type: str
      sample: CN=AC SNE V5,O=Ministere du Logement,C=FR
    serial:
      description: Serial number, hexadecimal as C(openssl x509 -serial) prints it.
      type: str
      sample: 5E1005
    sha256:
      description: SHA-256 fingerprint.
      type: str
      sample: "DC:4C:23:D9:3F:25:7B:A4:DB:CB:D8:5A:85:E6:D3:F9:C1:52:7A:37:27:7D:E4:6F:D3:8C:0B:10:8B:F4:35:1A"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      sample: "2040-01-01T00:00:00Z"
    expected:
      description: Whether it is the expected certificate (O(expected_sha256), O(expected_generation)).
      type: bool
      sample: true
    pem:
      description: The certificate, PEM (to run the probe from the controller with O(certificate_pem)).
      type: str
      sample: "-----BEGIN CERTIFICATE-----\nMIID...\n-----END CERTIFICATE-----\n"
encryption:
  description: What encrypted the message - V(cryptography) or V(openssl).
  returned: when the message was encrypted
  type: str
  sample: cryptography
envelope:
  description: What the envelope holds, as checked before sending.
  returned: when the message was encrypted
  type: dict
  sample: {"recipient_issuer": "CN=AC SNE V5,O=Ministere du Logement,C=FR", "recipient_serial": "5E1005",
           "key_transport": "rsaEncryption (PKCS#1 v1.5)", "content_encryption": "aes-256-cbc", "size": 742}
transport:
  description: The transport used.
  returned: always
  type: str
  sample: http
transport_details:
  description: The transport's settings (URL, SMTP server and Maildir, folders).
  returned: when the message was encrypted
  type: dict
  sample: {"name": "http", "url": "https://sne.example/async"}
receipt:
  description:
    - What the transport answered when it took the message - the receipt id of the HTTP
      endpoint or of the SMTP server's 250 reply, the path of the file for V(folder).
  returned: when the message was sent
  type: str
  sample: R000007-3fa9c1
sent_at:
  description: When the message was handed to the transport, seconds since the epoch (for O(phase=await)).
  returned: when the message was sent
  type: float
  sample: 1452155400.123
elapsed:
  description: Seconds from sending the message to its return (or to the end of the wait).
  returned: always
  type: float
  sample: 1.234
ignored_returns:
  description: Returns seen that were not for this message (other ids), and so ignored.
  returned: when the message was sent
  type: int
  sample: 0
return_xml:
  description: The return, as received.
  returned: when a return came
  type: str
  sample: "<?xml version='1.0' encoding='utf-8'?>\n<RetourAsynchrone id=\"SNEPROBE-...\" statut=\"ACCEPTE\" .../>\n"
return_info:
  description: Attributes of the return - statut, reception, generation, horodatage, and the guichet it names.
  returned: when a return came
  type: dict
  sample: {"statut": "ACCEPTE", "reception": "R000007-3fa9c1", "generation": "V5",
           "horodatage": "2016-01-07T09:30:01.123Z", "guichet": "G-013-0042"}
anomaly:
  description: The (first) anomaly of a rejection - C(code) and C(label) (the SNE's C(libelle)).
  returned: when status is rejected
  type: dict
  sample: {"code": "REJET_TEST", "label": "rejet demandé par le message de test"}
anomalies:
  description: Every anomaly of the rejection.
  returned: when status is rejected
  type: list
  elements: dict
  sample: [{"code": "REJET_TEST", "label": "rejet demandé par le message de test"}]
awaited:
  description:
    - With O(messages), each message's result by message id - the keys of a one-message await
      (RV(status), RV(msg), RV(elapsed), RV(return_xml), RV(anomaly)...) and C(host_label).
  returned: with O(messages)
  type: dict
  sample: {"SNEPROBE-guichet01-20160107T093000Z-5f2c9a01": {"status": "passed", "elapsed": 5.1}}
  version_added: 1.0.0
counts:
  description: With O(messages), how many messages ended in each status.
  returned: with O(messages)
  type: dict
  sample: {"passed": 199, "timeout": 1}
  version_added: 1.0.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sne.guichet.plugins.module_utils._probe.probe import (
    CERTIFICATE_TYPES,
    run_async_probe,
)


def main() -> None:
    argument_spec = dict(
        certificate=dict(type="dict", options=dict(
            path=dict(type="path", required=True),
            type=dict(type="str", choices=list(CERTIFICATE_TYPES)),
            alias=dict(type="str", aliases=["name"]),
            password=dict(type="str", no_log=True),
        )),
        certificate_pem=dict(type="str"),
        expected_sha256=dict(type="str"),
        expected_generation=dict(type="str"),
        send_anyway=dict(type="bool", default=False),
        guichet_id=dict(type="str"),
        phase=dict(type="str", default="probe", choices=["probe", "send", "await"]),
        message_id=dict(type="str"),
        sent_at=dict(type="float"),
        messages=dict(type="list", elements="dict"),
        message_type=dict(type="str", default="TEST"),
        host_label=dict(type="str"),
        transport=dict(type="str", required=True, choices=["http", "smtp", "folder"]),
        http=dict(type="dict", options=dict(
            url=dict(type="str", required=True),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            use_proxy=dict(type="bool", default=True),
        )),
        smtp=dict(type="dict", options=dict(
            host=dict(type="str", default="localhost"),
            port=dict(type="int", default=25),
            sender=dict(type="str", required=True),
            recipient=dict(type="str", required=True),
            maildir=dict(type="path", required=True),
        )),
        folder=dict(type="dict", options=dict(
            outbox=dict(type="path", required=True),
            inbox=dict(type="path", required=True),
        )),
        timeout=dict(type="float", default=300),
        poll_interval=dict(type="float", default=2),
        connect_timeout=dict(type="float", default=30),
        encryption=dict(type="str", default="auto", choices=["auto", "cryptography", "openssl"]),
        fail_on_status=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("certificate", "certificate_pem"), ("message_id", "messages")],
        required_together=[("message_id", "sent_at")],
        required_if=[("transport", "http", ["http"]), ("transport", "smtp", ["smtp"]),
                     ("transport", "folder", ["folder"]),
                     ("phase", "await", ["message_id", "messages"], True),
                     ("phase", "probe", ["guichet_id"]), ("phase", "send", ["guichet_id"]),
                     ("phase", "probe", ["certificate", "certificate_pem"], True),
                     ("phase", "send", ["certificate", "certificate_pem"], True),
                     ("phase", "probe", ["expected_sha256", "expected_generation"], True),
                     ("phase", "send", ["expected_sha256", "expected_generation"], True)],
    )
    run_async_probe(module)


if __name__ == "__main__":
    main()
