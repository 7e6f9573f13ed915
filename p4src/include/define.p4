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

/* simple_switch_grpc's --cpu-port: packet-in and packet-out go through it. */
const bit<9> CPU_PORT = 255;

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

/* Why a packet was dropped: the index of drop_counter. */
const bit<32> DROP_PARSER          = 0;
const bit<32> DROP_STEER_MISS      = 1;
const bit<32> DROP_NSH_TTL         = 2;
const bit<32> DROP_CHAIN_REJECTED  = 3;
const bit<32> DROP_FIREWALL        = 4;
const bit<32> DROP_METER           = 5;
const bit<32> DROP_RDMA_INDEX_MISS = 6;
const bit<32> DROP_EMAC_RESPONSE   = 7;
const bit<32> DROP_NO_ROUTE        = 8;
const bit<32> DROP_PASSES          = 9;
const bit<32> DROP_REASONS         = 10;

/* Passes one packet may make through a switch: one per function processed here, plus one. */
const bit<8> MAX_PASSES = 16;

/* What nsh_steer decided for this pass, beyond forwarding the packet. */
const bit<3> STEP_NONE       = 0;
const bit<3> STEP_PROCESS_LM = 1;
const bit<3> STEP_PROCESS_EM = 2;
const bit<3> STEP_TO_SERVER  = 3;

#endif
