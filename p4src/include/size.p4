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

#endif
