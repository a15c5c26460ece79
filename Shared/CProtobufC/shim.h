#ifndef MESH_CPROTOBUFC_SHIM_H
#define MESH_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
