/* Every table's, counter's, meter's and register's size: what one switch holds. */
#ifndef SREM_SIZE_P4
#define SREM_SIZE_P4

#include "define.p4"

/* Steering: chains classified at this switch, and (chain, function, version) triples steered
 * here, two versions of each during a reconfiguration. */
const int NSH_CLASSIFIER_SIZE = 4096;
const int NSH_STEER_SIZE      = 16384;

/* Keyless: only its default action, which tells the switch its id. */
const int SWITCH_IDENTITY_SIZE = 1;

/* A role for every port of the switch (9-bit port numbers). */
const int PORT_ROLE_SIZE = 512;

/* (server port, chain, function, version) a server may send back: at most one per steering entry. */
const int SERVER_RETURN_SIZE = NSH_STEER_SIZE;

/* Rules of the VNF instances whose rules are in this switch's local memory. */
const int FIREWALL_SIZE        = 65536;
const int NAT_LB_SIZE          = 65536;
const int RATE_LIMITER_SIZE    = 65536;
const int DSCP_CLASSIFIER_SIZE = 65536;

/* One entry per instance whose rules are in external memory. */
const int RDMA_INDEX_SIZE = 4096;

const int IPV4_LPM_SIZE = 4096;

/* Indexed by SPI, by VNF instance, by DROP_* reason, by a rate limiter rule's meter index. */
const bit<32> CHAIN_COUNTER_SIZE = 4096;
const bit<32> VNF_COUNTER_SIZE   = 4096;
const bit<32> DROP_COUNTER_SIZE  = DROP_REASONS;
const bit<32> FLOW_METER_SIZE    = 1024;

/* One cell: the sequence number of the next EMAC request. */
const bit<32> EMAC_SEQUENCE_SIZE = 1;

/* The EMAC requests waiting for an answer, one slot per sequence number modulo the size (a power
 * of two: the slot is the sequence number's low bits): a request still unanswered when its slot
 * comes round again is forgotten and its answer dropped, so the state is bounded whatever the EMAC
 * does. */
const bit<32> EMAC_PENDING_SIZE = 4096;

#endif
