//! From plan nodes to task chains: which nodes are fused into one task, and which chains
//! are connected by channels.
//!
//! A node joins its input's chain when it has exactly one input, the same parallelism, and
//! is that input's only consumer (Flink's chaining rule). A keyed operator (window
//! aggregation, Top-N, deduplication, changelog normalization) needs its input
//! hash-partitioned by key, so it starts a chain behind a hash exchange — unless everything
//! runs in one subtask, where the exchange would send every row to the same place. Sources,
//! VALUES and UNION always start a chain.

use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use eddy_sql::plan::{NodeId, Operator, StreamPlan};

/// Nodes fused into one task, run as `parallelism` subtasks.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Nodes in order; the first is the head, the last the tail.
    pub nodes: Vec<NodeId>,
    /// Subtasks.
    pub parallelism: usize,
}

impl Chain {
    /// The first node.
    pub fn head(&self) -> NodeId {
        self.nodes[0]
    }

    /// The last node.
    pub fn tail(&self) -> NodeId {
        self.nodes[self.nodes.len() - 1]
    }
}

/// How an upstream chain's subtasks reach a downstream chain's subtasks.
#[derive(Debug, Clone)]
pub enum Partitioning {
    /// Upstream subtask i sends to downstream subtask i (same parallelism).
    Forward,
    /// Each upstream subtask sends round-robin to every downstream subtask.
    Rebalance,
    /// Each row goes to the downstream subtask its key hashes to (no keys: subtask 0).
    Hash(Vec<Arc<dyn PhysicalExpr>>),
}

/// A channel connection between two chains.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Upstream chain index.
    pub from: usize,
    /// Downstream chain index.
    pub to: usize,
    /// How rows are spread.
    pub partitioning: Partitioning,
}

/// Chains and the edges between them.
#[derive(Debug, Clone)]
pub struct ChainGraph {
    /// Chains, in topological order.
    pub chains: Vec<Chain>,
    /// Channel connections.
    pub edges: Vec<Edge>,
}

impl ChainGraph {
    /// Fuse the plan's nodes into chains.
    pub fn build(plan: &StreamPlan) -> Self {
        let mut chains: Vec<Chain> = Vec::new();
        let mut chain_of: Vec<usize> = Vec::with_capacity(plan.nodes.len());
        for (id, node) in plan.nodes.iter().enumerate() {
            let starts_chain = matches!(node.operator, Operator::Source(_) | Operator::Values(_) | Operator::Union);
            let fused = if !starts_chain && node.inputs.len() == 1 {
                let input = node.inputs[0];
                let same_par = plan.nodes[input].parallelism == node.parallelism;
                let only_consumer = plan.consumers(input).len() == 1;
                let keyed_in_parallel = node.operator.input_partitioning().is_some() && node.parallelism > 1;
                (same_par && only_consumer && !keyed_in_parallel).then_some(chain_of[input])
            } else {
                None
            };
            match fused {
                Some(c) => {
                    chains[c].nodes.push(id);
                    chain_of.push(c);
                }
                None => {
                    chains.push(Chain { nodes: vec![id], parallelism: node.parallelism.max(1) });
                    chain_of.push(chains.len() - 1);
                }
            }
        }
        let mut edges = Vec::new();
        for (c, chain) in chains.iter().enumerate() {
            let head = &plan.nodes[chain.head()];
            for input in &head.inputs {
                let from = chain_of[*input];
                let partitioning = if let Some(keys) = head.operator.input_partitioning() {
                    Partitioning::Hash(keys)
                } else if chains[from].parallelism == chain.parallelism {
                    Partitioning::Forward
                } else {
                    Partitioning::Rebalance
                };
                edges.push(Edge { from, to: c, partitioning });
            }
        }
        Self { chains, edges }
    }
}
