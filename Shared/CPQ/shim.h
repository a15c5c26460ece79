#ifndef MESH_CPQ_SHIM_H
#define MESH_CPQ_SHIM_H
#include <libpq-fe.h>
#endif
