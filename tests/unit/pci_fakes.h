/* A fake machine for PCI tests: device_fakes.h's buses and interrupt lines, plus the board's
 * resource windows and MSI routes that record what the PCI layer programs and fires. Helpers
 * reach config space through mechanism #1 and ECAM. Include after <cmocka.h>. */
#ifndef QUOKKA_TESTS_PCI_FAKES_H
#define QUOKKA_TESTS_PCI_FAKES_H

#include "device_fakes.h"
#include "hw/pci/pci.h"
#include "vm/platform.h"
#include "vm/resources.h"

#include <pthread.h>

#define PCI_FAKE_MMIO64_BASE (8ULL << 30)
#define PCI_FAKE_MAX_ROUTES 4096

struct pci_fake_route {
    bool set;         /* msi_set was called */
    uint64_t address; /* what it was last programmed with */
    uint32_t data;
    unsigned sets;  /* msi_set calls */
    unsigned fires; /* msi_fire calls */
};

struct pci_fake_machine {
    struct fake_machine fm; /* fm.host is the device_host to hand out */
    struct vm_resources resources;
    pthread_mutex_t msi_lock;
    int route_limit; /* msi_alloc fails after this many (tests of exhaustion) */
    int nr_routes;
    unsigned total_fires;
    int last_fired;
    struct pci_fake_route routes[PCI_FAKE_MAX_ROUTES];
};

static inline int pci_fake_msi_alloc(void *ctx)
{
    struct pci_fake_machine *pf = ctx;
    pthread_mutex_lock(&pf->msi_lock);
    int r = pf->nr_routes < pf->route_limit ? pf->nr_routes++ : -1;
    pthread_mutex_unlock(&pf->msi_lock);
    return r;
}

static inline void pci_fake_msi_set(void *ctx, int route, uint64_t address, uint32_t data)
{
    struct pci_fake_machine *pf = ctx;
    pthread_mutex_lock(&pf->msi_lock);
    assert_true(route >= 0 && route < pf->nr_routes);
    struct pci_fake_route *r = &pf->routes[route];
    r->set = true;
    r->address = address;
    r->data = data;
    r->sets++;
    pthread_mutex_unlock(&pf->msi_lock);
}

static inline void pci_fake_msi_fire(void *ctx, int route)
{
    struct pci_fake_machine *pf = ctx;
    pthread_mutex_lock(&pf->msi_lock);
    assert_true(route >= 0 && route < pf->nr_routes);
    pf->routes[route].fires++;
    pf->total_fires++;
    pf->last_fired = route;
    pthread_mutex_unlock(&pf->msi_lock);
}

/* fake_machine_init plus resources (64-bit window at PCI_FAKE_MMIO64_BASE) and MSIs. */
static inline void pci_fake_machine_init(struct pci_fake_machine *pf)
{
    memset(pf, 0, sizeof(*pf));
    fake_machine_init(&pf->fm);
    vm_resources_init(&pf->resources, PCI_FAKE_MMIO64_BASE, PCI_MMIO64_SIZE);
    pthread_mutex_init(&pf->msi_lock, NULL);
    pf->route_limit = PCI_FAKE_MAX_ROUTES;
    pf->last_fired = -1;
    pf->fm.host.resources = &pf->resources;
    pf->fm.host.msi_alloc = pci_fake_msi_alloc;
    pf->fm.host.msi_set = pci_fake_msi_set;
    pf->fm.host.msi_fire = pci_fake_msi_fire;
    pf->fm.host.msi_ctx = pf;
    pf->fm.host.nr_vcpus = 1;
}

static inline void pci_fake_machine_destroy(struct pci_fake_machine *pf)
{
    pthread_mutex_destroy(&pf->msi_lock);
    vm_resources_destroy(&pf->resources);
    fake_machine_destroy(&pf->fm);
}

/* The struct is large (a route table): these keep it off the stack. */
static inline struct pci_fake_machine *pci_fake_machine_new(void)
{
    struct pci_fake_machine *pf = malloc(sizeof(*pf));
    assert_non_null(pf);
    pci_fake_machine_init(pf);
    return pf;
}

static inline void pci_fake_machine_free(struct pci_fake_machine *pf)
{
    pci_fake_machine_destroy(pf);
    free(pf);
}

static inline unsigned pci_fake_fires(struct pci_fake_machine *pf, int route)
{
    pthread_mutex_lock(&pf->msi_lock);
    unsigned n = pf->routes[route].fires;
    pthread_mutex_unlock(&pf->msi_lock);
    return n;
}

/* --- config space as a guest reaches it --------------------------------------------------- */

static inline uint32_t pci_cf8_address(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
    return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

/* Mechanism #1: address to 0xCF8, data at 0xCFC + (reg & 3). */
static inline uint32_t pci_cf8_read(struct pci_fake_machine *pf, unsigned slot, unsigned reg,
                                    unsigned size)
{
    uint64_t v = 0;
    bus_write(&pf->fm.pio, PORT_PCI_CONFIG_ADDRESS, 4, pci_cf8_address(0, slot, 0, reg));
    bus_read(&pf->fm.pio, PORT_PCI_CONFIG_DATA + (reg & 3), size, &v);
    return (uint32_t)v;
}

static inline void pci_cf8_write(struct pci_fake_machine *pf, unsigned slot, unsigned reg,
                                 unsigned size, uint32_t value)
{
    bus_write(&pf->fm.pio, PORT_PCI_CONFIG_ADDRESS, 4, pci_cf8_address(0, slot, 0, reg));
    bus_write(&pf->fm.pio, PORT_PCI_CONFIG_DATA + (reg & 3), size, value);
}

static inline uint64_t pci_ecam_addr(unsigned slot, unsigned fn, unsigned reg)
{
    return PHYS_PCI_ECAM + ((uint64_t)slot << 15 | (uint64_t)fn << 12 | reg);
}

static inline uint32_t pci_ecam_read(struct pci_fake_machine *pf, unsigned slot, unsigned reg,
                                     unsigned size)
{
    uint64_t v = 0;
    bus_read(&pf->fm.mmio, pci_ecam_addr(slot, 0, reg), size, &v);
    return (uint32_t)v;
}

static inline void pci_ecam_write(struct pci_fake_machine *pf, unsigned slot, unsigned reg,
                                  unsigned size, uint32_t value)
{
    bus_write(&pf->fm.mmio, pci_ecam_addr(slot, 0, reg), size, value);
}

static inline uint64_t pci_mmio_read(struct pci_fake_machine *pf, uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    bus_read(&pf->fm.mmio, addr, size, &v);
    return v;
}

static inline void pci_mmio_write(struct pci_fake_machine *pf, uint64_t addr, unsigned size,
                                  uint64_t value)
{
    bus_write(&pf->fm.mmio, addr, size, value);
}

#endif
