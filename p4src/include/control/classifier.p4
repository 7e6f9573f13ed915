/* The chain's source switch: classifies a plain IPv4 packet into its chain and pushes NSH (SPI =
 * chain, SI = functions left) with the configuration version in an MD type 2 context TLV, so that
 * every switch steers the packet by the one configuration it entered with. A chain the policy
 * rejected is dropped here (admission control in the data plane). Counts both per chain.
 */
#ifndef SREM_CLASSIFIER_P4
#define SREM_CLASSIFIER_P4

#include "../define.p4"
#include "../size.p4"
#include "../header.p4"
#include "drop.p4"

control Classifier(inout headers_t hdr, inout metadata_t meta) {
    @name(".SremIngress.chain_counter")
    counter(CHAIN_COUNTER_SIZE, CounterType.packets_and_bytes) chain_counter;

    @name(".SremIngress.push_nsh")
    action push_nsh(bit<24> spi, bit<8> si, bit<32> config_version) {
        hdr.nsh.setValid();
        hdr.nsh.version = 0;
        hdr.nsh.oam = 0;
        hdr.nsh.unassigned1 = 0;
        hdr.nsh.ttl = NSH_INITIAL_TTL;
        hdr.nsh.length = NSH_LENGTH_WORDS;
        hdr.nsh.unassigned2 = 0;
        hdr.nsh.md_type = NSH_MD_TYPE_2;
        hdr.nsh.next_protocol = NSH_NEXT_PROTO_IPV4;
        hdr.nsh.spi = spi;
        hdr.nsh.si = si;
        hdr.nsh_version.setValid();
        hdr.nsh_version.md_class = NSH_MD_CLASS_SREM;
        hdr.nsh_version.tlv_type = NSH_TLV_CONFIG_VERSION;
        hdr.nsh_version.unassigned = 0;
        hdr.nsh_version.tlv_length = NSH_TLV_VERSION_LENGTH;
        hdr.nsh_version.config_version = config_version;
        hdr.ethernet.ether_type = ETHERTYPE_NSH;
        chain_counter.count((bit<32>) spi);
    }

    @name(".SremIngress.reject_chain")
    action reject_chain(bit<24> spi) {
        chain_counter.count((bit<32>) spi);
        drop_with(meta, DROP_CHAIN_REJECTED);
    }

    /* Installed at the chain's source switch only; a miss is not a chain's packet. */
    @name(".SremIngress.nsh_classifier")
    table nsh_classifier {
        key = {
            hdr.ipv4.src_addr : ternary @name("src_addr");
            hdr.ipv4.dst_addr : ternary @name("dst_addr");
            hdr.ipv4.protocol : ternary @name("protocol");
            meta.l4_dst_port  : ternary @name("dst_port");
        }
        actions = { push_nsh; reject_chain; NoAction; }
        const default_action = NoAction();
        size = NSH_CLASSIFIER_SIZE;
    }

    apply {
        nsh_classifier.apply();
    }
}

#endif
