/*
 * Load balancing over a cluster's instances: round robin (smooth weighted), least request
 * (power of `choice_count` choices, weighted), random (weighted), ring hash (consistent, built
 * at compile time in gy_cluster.ring_*). A worker keeps one gy_lb_state per cluster; it is not
 * shared between threads.
 */
#ifndef GY_PROXY_LB_H
#define GY_PROXY_LB_H

#include <stdint.h>

#include "mesh/config.h"

struct gy_lb_state;

struct gy_lb_ctx {
    uint64_t hash;              /* ring hash key (see gy_lb_hash); ignored when !has_hash */
    bool has_hash;              /* no key: ring_hash falls back to random */
    const uint32_t *active;     /* active requests per instance on this worker, or NULL */
    const uint8_t *excluded;    /* per instance: non-zero = not usable now (down, tried), or NULL */
    const struct gy_constraint *subset; /* restrict to instances carrying its metadata, or NULL */
    uint64_t *rng;              /* the worker's PRNG state (gy_lb_rand) */
};

struct gy_lb_state *gy_lb_state_new(const struct gy_cluster *c);
void gy_lb_state_free(struct gy_lb_state *st);

/* Returns the index of the chosen instance, or -1 when no instance is usable. */
int gy_lb_pick(const struct gy_cluster *c, struct gy_lb_state *st, const struct gy_lb_ctx *ctx);

/* xorshift64* step; *state must be non-zero. */
uint64_t gy_lb_rand(uint64_t *state);

/* 64-bit hash of bytes (for ring hash keys and ring points); stable across runs. */
uint64_t gy_lb_hash(const void *data, size_t len);

/* Builds c->ring_hashes/ring_hosts/ring_size from the instances and weights (called by the compiler). */
int gy_lb_build_ring(struct gy_cluster *c);

#endif
