//! Graph algorithms over dense task indices: cycle detection and topological order.
//!
//! Both are iterative, so a chain of 100,000 tasks cannot overflow the stack.

use crate::ids::TaskIndex;

/// Every cycle, as the task indices of each strongly connected component that has more
/// than one task or a self-edge (Tarjan's algorithm). `edges[i]` lists `i`'s successors.
pub fn cycles(edges: &[&[TaskIndex]]) -> Vec<Vec<TaskIndex>> {
    const UNVISITED: usize = usize::MAX;
    let n = edges.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut found = Vec::new();
    // (node, position of the next successor to look at)
    let mut call: Vec<(usize, usize)> = Vec::new();

    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        call.push((root, 0));
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if *pos == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*pos) {
                let w = w.get();
                *pos += 1;
                if index[w] == UNVISITED {
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 || edges[v].contains(&TaskIndex::new(v)) {
                    found.push(component.into_iter().rev().map(TaskIndex::new).collect());
                }
            }
        }
    }
    found.sort();
    found
}

/// Indices ordered so each comes after all of its upstreams (Kahn's algorithm, stable by
/// index). `upstream[i]` lists `i`'s predecessors; the graph must be acyclic.
pub fn topological_order(upstream: &[&[TaskIndex]]) -> Vec<TaskIndex> {
    let n = upstream.len();
    let mut remaining: Vec<usize> = upstream.iter().map(|u| u.len()).collect();
    let mut downstream = vec![Vec::new(); n];
    for (i, ups) in upstream.iter().enumerate() {
        for &u in *ups {
            downstream[u.get()].push(i);
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let v = order[head];
        head += 1;
        for &d in &downstream[v] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                order.push(d);
            }
        }
    }
    order.into_iter().map(TaskIndex::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(v: &[usize]) -> Vec<TaskIndex> {
        v.iter().copied().map(TaskIndex::new).collect()
    }

    fn graph(v: &[Vec<usize>]) -> Vec<Vec<TaskIndex>> {
        v.iter().map(|e| ix(e)).collect()
    }

    fn as_slices(v: &[Vec<TaskIndex>]) -> Vec<&[TaskIndex]> {
        v.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn finds_every_cycle_and_self_edge() {
        let edges = graph(&[vec![1], vec![2], vec![0], vec![4], vec![3], vec![5], vec![]]);
        assert_eq!(
            cycles(&as_slices(&edges)),
            vec![ix(&[0, 1, 2]), ix(&[3, 4]), ix(&[5])]
        );
    }

    #[test]
    fn acyclic_graphs_have_none_and_long_chains_do_not_overflow() {
        let n = 200_000;
        let chain: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        assert!(cycles(&as_slices(&graph(&chain))).is_empty());
        let ups: Vec<Vec<usize>> = (0..n)
            .map(|i| if i > 0 { vec![i - 1] } else { vec![] })
            .collect();
        assert_eq!(
            topological_order(&as_slices(&graph(&ups))),
            TaskIndex::all(n).collect::<Vec<_>>()
        );
    }

    #[test]
    fn topological_order_puts_upstreams_first() {
        let ups = graph(&[vec![2], vec![0, 2], vec![]]);
        assert_eq!(topological_order(&as_slices(&ups)), ix(&[2, 0, 1]));
    }
}
