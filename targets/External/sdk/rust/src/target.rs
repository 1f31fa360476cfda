//! What an adapter implements: one method per operation of the case language.

use crate::addr::{Gpa, Gva, Pa};
use crate::types::{
    ApiError, ApiResult, Capabilities, EptpRequest, GuestPaging, InveptType, MemoryType, Permissions,
    Processor, Translation,
};

/// An EPT implementation under test. Every method answers one command; the meaning of each
/// operation and its errors is the case language's (`shared/spec/case-format.md`, "Operations on
/// the implementation's API"). Operations the target does not declare in
/// [`Target::capabilities`] are never sent; their default answers `Unsupported`.
///
/// Table pages come from [`crate::Page`]; table bytes are reached through
/// [`crate::Pa::into_kva`]. The SDK reports allocations, releases and invalidations itself.
pub trait Target {
    /// Name, operations, page sizes and walkers, for the `HELLO` reply.
    fn capabilities(&self) -> Capabilities;

    /// A new case on processor `cpu`: drop every table (the SDK has already forgotten their pages;
    /// dropping a [`crate::Page`] now releases nothing). Answer `Unsupported` when the target
    /// cannot work on this processor.
    fn reset(&mut self, cpu: &Processor) -> ApiResult;

    /// The EPT pointer the case asks for (`eptp mt=… walk=… ad=…`): return the root table's
    /// address, allocating the root if there is none yet. The SDK composes the EPTP from it;
    /// after an error it answers the EPTP of the last success.
    fn set_eptp(&mut self, request: &EptpRequest) -> Result<Pa, ApiError>;

    /// `controls mbec=…`.
    fn set_controls(&mut self, mbec: bool) -> ApiResult {
        if mbec {
            Err(ApiError::Unsupported)
        } else {
            Ok(())
        }
    }

    /// `map gpa=… hpa=… size=… perm=… mt=… ipat=…`.
    fn map(&mut self, _gpa: Gpa, _hpa: Pa, _size: u64, _permissions: Permissions, _memory_type: MemoryType, _ignore_pat: bool) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `unmap gpa=… size=…`.
    fn unmap(&mut self, _gpa: Gpa, _size: u64) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `protect gpa=… size=… perm=…`.
    fn protect(&mut self, _gpa: Gpa, _size: u64, _permissions: Permissions) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `retype gpa=… size=… mt=… ipat=…`.
    fn retype(&mut self, _gpa: Gpa, _size: u64, _memory_type: MemoryType, _ignore_pat: bool) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `split gpa=…`.
    fn split(&mut self, _gpa: Gpa) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `merge gpa=… size=…`.
    fn merge(&mut self, _gpa: Gpa, _size: u64) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `memory start=… end=… mt=…`.
    fn memory(&mut self, _start: Gpa, _end: Gpa, _memory_type: MemoryType) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `identity-map offset=… offset-from=…`.
    fn identity_map(&mut self, _offset: u64, _offset_from: Gpa) -> ApiResult {
        Err(ApiError::Unsupported)
    }

    /// `invept type=…`: the API's invalidation, which calls [`crate::invept`] (its event goes in
    /// this command's reply). The default does just that.
    fn invept(&mut self, kind: InveptType) -> ApiResult {
        crate::invept(kind);
        Ok(())
    }

    /// The guest's paging changed (`SET_GUEST`): what [`Target::walk_gva`] walks from now on. A
    /// new case starts with paging off.
    fn set_guest(&mut self, _guest: &GuestPaging) {}

    /// The target's own lookup of a guest-physical address (`WALK` space 0): None when not mapped.
    fn walk_gpa(&mut self, _gpa: Gpa) -> Option<Translation> {
        None
    }

    /// The target's own lookup of a guest-linear address through the guest's page tables and the
    /// EPT (`WALK` space 1): None when not mapped.
    fn walk_gva(&mut self, _gva: Gva) -> Option<Translation> {
        None
    }
}
