/* The four in-network VNF kinds: as match-action tables in local memory (LM), every rule scoped by
 * the VNF instance that owns it (Vnfs), and as the same actions applied from an EMAC answer for
 * instances whose rules live in external memory (EM, VnfAnswer). Both use the one meter array,
 * indexed by the rule, which SremIngress holds and gives to both.
 *
 * An EMAC answer is applied as the function type of the request it matched (control/emac.p4), not
 * as the answer says: a firewall takes PERMIT or DENY, a NAT REWRITE, a rate limiter METER on one of
 * its own meter cells, a DSCP classifier SET_DSCP; a miss is what a miss in the LM table does. Any
 * other answer is dropped. A meter index is checked against the array before the meter runs.
 */
#ifndef SREM_VNFS_P4
#define SREM_VNFS_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

action rewrite_destination(inout headers_t hdr, inout metadata_t meta, in ipv4_addr_t addr, in bit<16> port) {
    hdr.ipv4.dst_addr = addr;
    hdr.tcp.dst_port = port;
    hdr.udp.dst_port = port;
    hdr.udp.checksum = 0;
    meta.l4_dst_port = port;
    meta.l4_rewritten = 1;
}

/* The meter a rule asked for (meta.meter_valid), if its cell is in the array; yellow packets are
 * marked, red ones marked or dropped. */
control VnfMeter(inout headers_t hdr, inout metadata_t meta)(meter flow_meter) {
    apply {
        if (meta.meter_valid == 1) {
            if ((bit<32>) meta.meter_index < FLOW_METER_SIZE) {
                flow_meter.execute_meter((bit<32>) meta.meter_index, meta.color);
            } else {
                drop_with(meta, DROP_INDEX_RANGE);
            }
        }
        if (meta.dropped == 0) {
            if (meta.color == V1MODEL_METER_COLOR_RED && meta.drop_red == 1) {
                drop_with(meta, DROP_METER);
            } else if (meta.color != V1MODEL_METER_COLOR_GREEN) {
                hdr.ipv4.dscp = meta.mark_dscp;
            }
        }
    }
}

control Vnfs(inout headers_t hdr, inout metadata_t meta)(meter flow_meter) {
    VnfMeter(flow_meter) metering;

    @name(".SremIngress.vnfs.fw_permit")
    action fw_permit() { }

    @name(".SremIngress.vnfs.fw_deny")
    action fw_deny() {
        drop_with(meta, DROP_FIREWALL);
    }

    @name(".SremIngress.vnfs.nat_rewrite")
    action nat_rewrite(ipv4_addr_t addr, bit<16> port) {
        rewrite_destination(hdr, meta, addr, port);
    }

    /* The meter runs after the table (VnfMeter), once its index is known to be in the array. */
    @name(".SremIngress.vnfs.rl_meter")
    action rl_meter(bit<16> meter_index, bit<6> mark_dscp, bit<1> drop_red) {
        meta.meter_valid = 1;
        meta.meter_index = meter_index;
        meta.mark_dscp = mark_dscp;
        meta.drop_red = drop_red;
    }

    @name(".SremIngress.vnfs.set_dscp")
    action set_dscp(bit<6> dscp) {
        hdr.ipv4.dscp = dscp;
    }

    /* ACL on the 5-tuple; a packet no rule of its instance permits is dropped. */
    @name(".SremIngress.vnfs.firewall")
    table firewall {
        key = {
            meta.instance     : exact   @name("instance");
            hdr.ipv4.src_addr : ternary @name("src_addr");
            hdr.ipv4.dst_addr : ternary @name("dst_addr");
            hdr.ipv4.protocol : ternary @name("protocol");
            meta.l4_src_port  : ternary @name("src_port");
            meta.l4_dst_port  : ternary @name("dst_port");
        }
        actions = { fw_permit; fw_deny; }
        const default_action = fw_deny();
        size = FIREWALL_SIZE;
    }

    /* NAT / load balancer: a virtual address and port to a backend's. */
    @name(".SremIngress.vnfs.nat_lb")
    table nat_lb {
        key = {
            meta.instance     : exact @name("instance");
            hdr.ipv4.dst_addr : exact @name("dst_addr");
            hdr.ipv4.protocol : exact @name("protocol");
            meta.l4_dst_port  : exact @name("dst_port");
        }
        actions = { nat_rewrite; NoAction; }
        const default_action = NoAction();
        size = NAT_LB_SIZE;
    }

    /* Rate limiter: a meter per rule. */
    @name(".SremIngress.vnfs.rate_limiter")
    table rate_limiter {
        key = {
            meta.instance     : exact   @name("instance");
            hdr.ipv4.src_addr : ternary @name("src_addr");
            hdr.ipv4.dst_addr : ternary @name("dst_addr");
            hdr.ipv4.protocol : ternary @name("protocol");
            meta.l4_dst_port  : ternary @name("dst_port");
        }
        actions = { rl_meter; NoAction; }
        const default_action = NoAction();
        size = RATE_LIMITER_SIZE;
    }

    /* DSCP classifier: sets the class of service of matching traffic. */
    @name(".SremIngress.vnfs.dscp_classifier")
    table dscp_classifier {
        key = {
            meta.instance     : exact   @name("instance");
            hdr.ipv4.src_addr : ternary @name("src_addr");
            hdr.ipv4.dst_addr : ternary @name("dst_addr");
            hdr.ipv4.protocol : ternary @name("protocol");
            meta.l4_dst_port  : ternary @name("dst_port");
        }
        actions = { set_dscp; NoAction; }
        const default_action = NoAction();
        size = DSCP_CLASSIFIER_SIZE;
    }

    apply {
        meta.color = V1MODEL_METER_COLOR_GREEN;
        meta.drop_red = 0;
        meta.meter_valid = 0;
        if (meta.vnf_type == VNF_FIREWALL) {
            firewall.apply();
        } else if (meta.vnf_type == VNF_NAT) {
            nat_lb.apply();
        } else if (meta.vnf_type == VNF_RATE_LIMITER) {
            rate_limiter.apply();
        } else if (meta.vnf_type == VNF_CLASSIFIER) {
            dscp_classifier.apply();
        }
        metering.apply(hdr, meta);
    }
}

/* An EMAC answer that matched a request of this switch (meta.vnf_type, meter_base and meter_count
 * are the request's). */
control VnfAnswer(inout headers_t hdr, inout metadata_t meta)(meter flow_meter) {
    VnfMeter(flow_meter) metering;

    apply {
        meta.color = V1MODEL_METER_COLOR_GREEN;
        meta.drop_red = 0;
        meta.meter_valid = 0;
        bit<8> code = hdr.emac_response.action_code;
        if (hdr.emac_response.status == EMAC_STATUS_HIT) {
            if (meta.vnf_type == VNF_FIREWALL && code == EMAC_ACTION_PERMIT) {
                /* permitted */
            } else if (meta.vnf_type == VNF_FIREWALL && code == EMAC_ACTION_DENY) {
                drop_with(meta, DROP_FIREWALL);
            } else if (meta.vnf_type == VNF_NAT && code == EMAC_ACTION_REWRITE) {
                rewrite_destination(hdr, meta, hdr.emac_response.addr, hdr.emac_response.port);
            } else if (meta.vnf_type == VNF_RATE_LIMITER && code == EMAC_ACTION_METER) {
                /* Only the instance's own cells: another chain's meter is not its to run. */
                if (hdr.emac_response.meter_index - meta.meter_base < meta.meter_count) {
                    meta.meter_valid = 1;
                    meta.meter_index = hdr.emac_response.meter_index;
                    meta.mark_dscp = hdr.emac_response.dscp[5:0];
                    meta.drop_red = hdr.emac_response.flags[0:0];
                } else {
                    drop_with(meta, DROP_INDEX_RANGE);
                }
            } else if (meta.vnf_type == VNF_CLASSIFIER && code == EMAC_ACTION_SET_DSCP) {
                hdr.ipv4.dscp = hdr.emac_response.dscp[5:0];
            } else {
                drop_with(meta, DROP_EMAC_RESPONSE);
            }
        } else if (hdr.emac_response.status == EMAC_STATUS_MISS) {
            /* No rule in external memory: what a miss in the LM table does. */
            if (meta.vnf_type == VNF_FIREWALL) {
                drop_with(meta, DROP_FIREWALL);
            }
        } else {
            drop_with(meta, DROP_EMAC_RESPONSE);
        }
        metering.apply(hdr, meta);
    }
}

#endif
