/* Service function forwarding (RFC 8300): on (SPI, SI, version), what this switch does for the
 * chain's next function: process it here (its rules in local memory, LM, or in external memory,
 * EM), send the packet to the server hosting it (which returns it with SI - 1), or forward it toward
 * the next switch. The chain's last switch pops NSH and the packet goes on as plain IPv4.
 *
 * NSH's TTL counts service function forwarder lookups (RFC 8300, 2.2): decremented before every
 * lookup, 0 wrapping to 63, and a packet whose TTL is 0 after the decrement is dropped. A packet a
 * server sends back is steered only if this is the (server port, SPI, SI, version) the chain returns
 * on from that server (server_return): a server can resume its own chains, not skip into others.
 */
#ifndef SREM_STEERING_P4
#define SREM_STEERING_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control NshSteering(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t standard_metadata) {
    /* Toward the next switch, addressed to it. */
    @name(".SremIngress.forward")
    action forward(bit<9> port, mac_addr_t dst_mac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = dst_mac;
        meta.egress_chosen = 1;
    }

    @name(".SremIngress.to_server")
    action to_server(bit<9> port, mac_addr_t server_mac, bit<16> instance) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = server_mac;
        meta.egress_chosen = 1;
        meta.step = STEP_TO_SERVER;
        meta.instance = instance;
    }

    @name(".SremIngress.process_lm")
    action process_lm(bit<16> instance, bit<8> vnf_type) {
        meta.step = STEP_PROCESS_LM;
        meta.instance = instance;
        meta.vnf_type = vnf_type;
    }

    @name(".SremIngress.process_em")
    action process_em(bit<16> instance, bit<8> vnf_type) {
        meta.step = STEP_PROCESS_EM;
        meta.instance = instance;
        meta.vnf_type = vnf_type;
    }

    @name(".SremIngress.chain_end")
    action chain_end() {
        hdr.nsh.setInvalid();
        hdr.nsh_version.setInvalid();
        hdr.ethernet.ether_type = ETHERTYPE_IPV4;
    }

    @name(".SremIngress.steer_miss")
    action steer_miss() {
        drop_with(meta, DROP_STEER_MISS);
    }

    @name(".SremIngress.nsh_steer")
    table nsh_steer {
        key = {
            hdr.nsh.spi                    : exact @name("spi");
            hdr.nsh.si                     : exact @name("si");
            hdr.nsh_version.config_version : exact @name("config_version");
        }
        actions = { forward; to_server; process_lm; process_em; chain_end; steer_miss; }
        const default_action = steer_miss();
        size = NSH_STEER_SIZE;
    }

    @name(".SremIngress.accept_server_return")
    action accept_server_return() { }

    @name(".SremIngress.reject_server_return")
    action reject_server_return() {
        drop_with(meta, DROP_SERVER_RETURN);
    }

    /* What each server port may send back: the (SPI, SI, version) of a chain whose function that
     * server just ran, one entry per return the steering expects. */
    @name(".SremIngress.server_return")
    table server_return {
        key = {
            standard_metadata.ingress_port : exact @name("port");
            hdr.nsh.spi                    : exact @name("spi");
            hdr.nsh.si                     : exact @name("si");
            hdr.nsh_version.config_version : exact @name("config_version");
        }
        actions = { accept_server_return; reject_server_return; }
        const default_action = reject_server_return();
        size = SERVER_RETURN_SIZE;
    }

    apply {
        if (meta.port_role == PORT_ROLE_SERVER) {
            server_return.apply();
        }
        if (meta.dropped == 0) {
            hdr.nsh.ttl = hdr.nsh.ttl - 1;
            if (hdr.nsh.ttl == 0) {
                drop_with(meta, DROP_NSH_TTL);
            } else if (meta.passes >= MAX_PASSES) {
                drop_with(meta, DROP_PASSES);
            } else {
                nsh_steer.apply();
            }
        }
    }
}

#endif
