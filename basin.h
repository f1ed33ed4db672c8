// basin: one include for the whole public API.
#pragma once

// core: tensors, autograd and the differentiable ops
#include "core/autograd.h"
#include "core/batchnorm.h"
#include "core/conv.h"
#include "core/cpu_engine.h"
#include "core/device.h"
#include "core/distributed.h"
#include "core/dtype.h"
#include "core/elementwise.h"
#include "core/error.h"
#include "core/indexing.h"
#include "core/loss.h"
#include "core/matmul.h"
#include "core/pool.h"
#include "core/random.h"
#include "core/reduce.h"
#include "core/serialization.h"
#include "core/shape.h"
#include "core/softmax.h"
#include "core/storage.h"
#include "core/tensor.h"

// nn: modules, layers, losses, initialization, models
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/models/models.h"
#include "nn/module.h"

// optim: optimizers, SAM/ASAM, schedules, the parameter arena
#include "optim/adamw.h"
#include "optim/arena.h"
#include "optim/clip.h"
#include "optim/data_parallel.h"
#include "optim/optimizer.h"
#include "optim/sam.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

// data: datasets, augmentation, batch loading
#include "data/augment.h"
#include "data/cifar.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mnist.h"

// analysis: Hessian eigenvalues and trace, SAM/ASAM sharpness, loss landscapes
#include "analysis/hessian.h"
#include "analysis/landscape.h"
#include "analysis/objective.h"
#include "analysis/sharpness.h"
