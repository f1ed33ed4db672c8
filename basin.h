// basin: one include for the whole public API.
#pragma once

#include "core/autograd.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/shape.h"
#include "core/storage.h"
#include "core/tensor.h"
