/*
 * The string-keyed hash table (struct fg_table in fleetgate.h, which says why it is
 * one): chained buckets, FNV-1a, doubled when the load passes 1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetgate.h"

static size_t fg_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	for(; *key; key++){
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static struct fg_node **fg_table_slot(const struct fg_table *t, const char *key)
{
	struct fg_node **slot;
	if(!t->size || !key) return NULL;
	for(slot = &t->buckets[fg_hash(key) & (t->size - 1)]; *slot; slot = &(*slot)->next){
		if(strcmp((*slot)->key, key) == 0) return slot;
	}
	return slot;
}

void *fg_table_get(const struct fg_table *t, const char *key)
{
	struct fg_node **slot = fg_table_slot(t, key);
	return slot && *slot ? (*slot)->value : NULL;
}

static bool fg_table_grow(struct fg_table *t)
{
	size_t size = t->size ? t->size * 2 : 64;
	struct fg_node **buckets = calloc(size, sizeof(*buckets));
	if(!buckets) return false;
	for(size_t i = 0; i < t->size; i++){
		struct fg_node *node = t->buckets[i], *next;
		for(; node; node = next){
			size_t b = fg_hash(node->key) & (size - 1);
			next = node->next;
			node->next = buckets[b];
			buckets[b] = node;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->size = size;
	return true;
}

/* Adds or replaces (freeing the old value). On failure the caller still owns value. */
bool fg_table_put(struct fg_table *t, const char *key, void *value)
{
	struct fg_node **slot, *node;

	if(t->count >= t->size && !fg_table_grow(t)) return false;
	slot = fg_table_slot(t, key);
	if(*slot){
		t->free_value((*slot)->value);
		(*slot)->value = value;
		return true;
	}
	node = calloc(1, sizeof(*node));
	if(!node || !(node->key = strdup(key))){
		free(node);
		return false;
	}
	node->value = value;
	*slot = node;
	t->count++;
	return true;
}

void fg_table_remove(struct fg_table *t, const char *key)
{
	struct fg_node **slot = fg_table_slot(t, key), *node;
	if(!slot || !*slot) return;
	node = *slot;
	*slot = node->next;
	t->free_value(node->value);
	free(node->key);
	free(node);
	t->count--;
}

void fg_table_clear(struct fg_table *t)
{
	for(size_t i = 0; i < t->size; i++){
		struct fg_node *node = t->buckets[i], *next;
		for(; node; node = next){
			next = node->next;
			t->free_value(node->value);
			free(node->key);
			free(node);
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
}
