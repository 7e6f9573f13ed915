/* The four in-network VNF kinds as match-action tables in local memory (LM), every rule scoped by
 * the VNF instance that owns it, and the same actions applied from an EMAC response for instances
 * whose rules live in external memory (EM). Both in one control because both use the one meter
 * array, indexed by the rule.
 */
#ifndef SREM_VNFS_P4
#define SREM_VNFS_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control Vnfs(inout headers_t hdr, inout metadata_t meta) {
    @name(".SremIngress.vnfs.flow_meter")
    meter(FLOW_METER_SIZE, MeterType.bytes) flow_meter;

    @name(".SremIngress.vnfs.fw_permit")
    action fw_permit() { }

    @name(".SremIngress.vnfs.fw_deny")
    action fw_deny() {
        drop_with(meta, DROP_FIREWALL);
    }

    @name(".SremIngress.vnfs.nat_rewrite")
    action nat_rewrite(ipv4_addr_t addr, bit<16> port) {
        hdr.ipv4.dst_addr = addr;
        hdr.tcp.dst_port = port;
        hdr.udp.dst_port = port;
        hdr.udp.checksum = 0;
        meta.l4_dst_port = port;
        meta.l4_rewritten = 1;
    }

    @name(".SremIngress.vnfs.rl_meter")
    action rl_meter(bit<16> meter_index, bit<6> mark_dscp, bit<1> drop_red) {
        flow_meter.execute_meter((bit<32>) meter_index, meta.color);
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

    /* Rate limiter: a meter per rule; yellow packets are marked, red ones marked or dropped. */
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
        meta.color = 0;
        meta.drop_red = 0;
        if (meta.step == STEP_PROCESS_LM) {
            if (meta.vnf_type == VNF_FIREWALL) {
                firewall.apply();
            } else if (meta.vnf_type == VNF_NAT) {
                nat_lb.apply();
            } else if (meta.vnf_type == VNF_RATE_LIMITER) {
                rate_limiter.apply();
            } else if (meta.vnf_type == VNF_CLASSIFIER) {
                dscp_classifier.apply();
            }
        } else if (hdr.emac_response.isValid()) {
            if (hdr.emac_response.status == EMAC_STATUS_HIT) {
                if (hdr.emac_response.action_code == EMAC_ACTION_DENY) {
                    fw_deny();
                } else if (hdr.emac_response.action_code == EMAC_ACTION_REWRITE) {
                    nat_rewrite(hdr.emac_response.addr, hdr.emac_response.port);
                } else if (hdr.emac_response.action_code == EMAC_ACTION_SET_DSCP) {
                    set_dscp(hdr.emac_response.dscp[5:0]);
                } else if (hdr.emac_response.action_code == EMAC_ACTION_METER) {
                    rl_meter(hdr.emac_response.meter_index, hdr.emac_response.dscp[5:0],
                             hdr.emac_response.flags[0:0]);
                } else if (hdr.emac_response.action_code != EMAC_ACTION_PERMIT) {
                    drop_with(meta, DROP_EMAC_RESPONSE);
                }
            } else if (hdr.emac_response.status == EMAC_STATUS_MISS) {
                /* No rule in external memory: what a miss in the LM table does. */
                if (hdr.emac_response.vnf_type == VNF_FIREWALL) {
                    fw_deny();
                }
            } else {
                drop_with(meta, DROP_EMAC_RESPONSE);
            }
        }
        if (meta.color == V1MODEL_METER_COLOR_RED && meta.drop_red == 1) {
            drop_with(meta, DROP_METER);
        } else if (meta.color != V1MODEL_METER_COLOR_GREEN) {
            hdr.ipv4.dscp = meta.mark_dscp;
        }
    }
}

#endif
