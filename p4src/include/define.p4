/* Constants and types of srem.p4: protocol numbers, the codes the controller and the EMAC share
 * with the switch, drop reasons and the steps of a pass. Table, counter and meter sizes are in
 * size.p4.
 */
#ifndef SREM_DEFINE_P4
#define SREM_DEFINE_P4

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;

/* EtherTypes and the NSH encoding: mirrored in srem_formats/wire.py. */
const bit<16> ETHERTYPE_IPV4          = 0x0800;
const bit<16> ETHERTYPE_NSH           = 0x894F;  /* RFC 8300 */
const bit<16> ETHERTYPE_EMAC_REQUEST  = 0x88B5;  /* IEEE 802 local experimental 1 */
const bit<16> ETHERTYPE_EMAC_RESPONSE = 0x88B6;  /* IEEE 802 local experimental 2 */

const bit<8> IP_PROTO_TCP = 6;
const bit<8> IP_PROTO_UDP = 17;

const bit<8>  NSH_NEXT_PROTO_IPV4    = 0x01;
const bit<4>  NSH_MD_TYPE_2          = 0x2;
const bit<6>  NSH_LENGTH_WORDS       = 4;       /* base + service path + one 8-byte context TLV */
const bit<6>  NSH_INITIAL_TTL        = 63;
const bit<16> NSH_MD_CLASS_SREM      = 0xFFFE;  /* experimental MD class (RFC 9452) */
const bit<8>  NSH_TLV_CONFIG_VERSION = 0x01;
const bit<7>  NSH_TLV_VERSION_LENGTH = 4;       /* bytes of the version TLV's value */

/* simple_switch_grpc's --cpu-port: packet-in and packet-out go through it. */
const bit<9> CPU_PORT = 255;

/* What is attached to a port, as the controller writes it into port_role from the topology
 * (controller/dataplane/layout.py, PortRole): who may send what into the switch.
 *   host   - plain IPv4 with the host's own source address; never NSH or EMAC answers
 *   link   - another switch: NSH and plain IPv4
 *   server - NSH only for the (SPI, SI, version) the chain sends back from that server; plain IPv4
 *   EMAC   - answers to this switch's outstanding EMAC requests, nothing else
 *   CPU    - the controller (packet-out, handled before the roles)
 * A port without a role sends nothing in. A recirculated pass is the switch's own packet. */
const bit<3> PORT_ROLE_NONE         = 0;
const bit<3> PORT_ROLE_HOST         = 1;
const bit<3> PORT_ROLE_LINK         = 2;
const bit<3> PORT_ROLE_SERVER       = 3;
const bit<3> PORT_ROLE_EMAC         = 4;
const bit<3> PORT_ROLE_CPU          = 5;
const bit<3> PORT_ROLE_RECIRCULATED = 7;  /* not written by the controller: a pass after recirculation */

/* VNF kinds with an in-network implementation: srem_formats/flows.py, VnfKind. */
const bit<8> VNF_FIREWALL     = 1;
const bit<8> VNF_NAT          = 2;
const bit<8> VNF_RATE_LIMITER = 3;
const bit<8> VNF_CLASSIFIER   = 4;

/* An EMAC response: its status (srem_formats/wire.py, STATUS_*) and the action of the rule it
 * found (srem_formats/flows.py, Action). */
const bit<8> EMAC_STATUS_HIT      = 0;
const bit<8> EMAC_STATUS_MISS     = 1;
const bit<8> EMAC_ACTION_PERMIT   = 0;
const bit<8> EMAC_ACTION_DENY     = 1;
const bit<8> EMAC_ACTION_REWRITE  = 2;
const bit<8> EMAC_ACTION_SET_DSCP = 3;
const bit<8> EMAC_ACTION_METER    = 4;

/* Why a packet was dropped: the index of drop_counter (controller/dataplane/entries.py, DropReason). */
const bit<32> DROP_PARSER           = 0;   /* malformed, or NSH other than SR-EM's MD type 2 layout */
const bit<32> DROP_STEER_MISS       = 1;
const bit<32> DROP_NSH_TTL          = 2;   /* NSH TTL 0 after the decrement (RFC 8300, 2.2) */
const bit<32> DROP_CHAIN_REJECTED   = 3;
const bit<32> DROP_FIREWALL         = 4;
const bit<32> DROP_METER            = 5;
const bit<32> DROP_RDMA_INDEX_MISS  = 6;
const bit<32> DROP_EMAC_RESPONSE    = 7;   /* an answer to our request whose status or action the function does not take */
const bit<32> DROP_NO_ROUTE         = 8;
const bit<32> DROP_PASSES           = 9;
const bit<32> DROP_PORT_UNKNOWN     = 10;  /* a frame from a port the controller gave no role */
const bit<32> DROP_NSH_UNTRUSTED    = 11;  /* NSH from a port that may not send it: a host, the EMAC */
const bit<32> DROP_SERVER_RETURN    = 12;  /* NSH from a server for a (SPI, SI, version) not steered back from it */
const bit<32> DROP_EMAC_UNTRUSTED   = 13;  /* an EMAC answer from a port that is not the EMAC port */
const bit<32> DROP_EMAC_UNSOLICITED = 14;  /* an EMAC answer matching no request of this switch */
const bit<32> DROP_EMAC_DUPLICATE   = 15;  /* an answer to a request already answered */
const bit<32> DROP_EMAC_LATE        = 16;  /* an answer after EMAC_ANSWER_TIMEOUT_US */
const bit<32> DROP_INDEX_RANGE      = 17;  /* an index outside its array or its instance's share of it */
const bit<32> DROP_IPV4_TTL         = 18;  /* plain IPv4 with TTL 0 or 1 */
const bit<32> DROP_SPOOFED_SOURCE   = 19;  /* IPv4 from a host port with another source address than the host's */
const bit<32> DROP_UNHANDLED        = 20;  /* a frame the program does not handle (ARP, IPv6, VLAN, other EtherTypes) */
const bit<32> DROP_SERVER_IPV4      = 21;  /* plain IPv4 from a server port: a server sends chain packets back in NSH only */
const bit<32> DROP_REASONS          = 22;

/* Passes one packet may make through a switch: one per function processed here, plus one. */
const bit<8> MAX_PASSES = 16;

/* What this pass does beyond forwarding the packet: what nsh_steer decided, or applying an EMAC
 * answer that matched one of this switch's requests. */
const bit<3> STEP_NONE        = 0;
const bit<3> STEP_PROCESS_LM  = 1;
const bit<3> STEP_PROCESS_EM  = 2;
const bit<3> STEP_TO_SERVER   = 3;
const bit<3> STEP_EMAC_ANSWER = 4;

/* How long an EMAC request waits for its answer (ingress timestamps, microseconds): longer than the
 * EMAC's worst case (n_f + 1 READs, each up to its timeout and one retry); a later answer is dropped. */
const bit<48> EMAC_ANSWER_TIMEOUT_US = 500000;

#endif
